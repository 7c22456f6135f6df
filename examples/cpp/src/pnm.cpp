#include "pnm.hpp"

#include <cctype>
#include <fstream>
#include <limits>

#include "tensor.hpp"

namespace anan {
namespace {

UserError pnm_error(const std::filesystem::path& path, const std::string& what) {
  return UserError(path.string() + ": " + what);
}

/// Skips whitespace and '#' comments between header fields.
void skip_space_and_comments(std::istream& in) {
  while (in) {
    const int c = in.peek();
    if (c == '#') {
      in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
    } else if (c != EOF && std::isspace(c)) {
      in.get();
    } else {
      return;
    }
  }
}

int64_t read_header_number(std::istream& in, const std::filesystem::path& path,
                           const char* field) {
  skip_space_and_comments(in);
  int64_t value = 0;
  if (!(in >> value) || value <= 0) {
    throw pnm_error(path, std::string("bad PPM/PGM header: missing or invalid ") + field);
  }
  return value;
}

}  // namespace

bool has_pnm_magic(const std::string& first_bytes) {
  return first_bytes.size() >= 3 && first_bytes[0] == 'P' &&
         (first_bytes[1] == '6' || first_bytes[1] == '5') &&
         std::isspace(static_cast<unsigned char>(first_bytes[2]));
}

Image read_pnm(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError("cannot open input file " + path.string());
  std::string magic(2, '\0');
  in.read(magic.data(), 2);
  if (magic != "P6" && magic != "P5") {
    throw pnm_error(path, "not a binary PPM (P6) or PGM (P5) image");
  }

  Image image;
  image.path = path;
  image.channels = magic == "P6" ? 3 : 1;
  image.width = read_header_number(in, path, "width");
  image.height = read_header_number(in, path, "height");
  constexpr int64_t kMaxSide = 1 << 15;
  if (image.width > kMaxSide || image.height > kMaxSide) {
    throw pnm_error(path, "image of " + std::to_string(image.width) + "x" +
                              std::to_string(image.height) + " pixels is too large");
  }
  const int64_t maxval = read_header_number(in, path, "maxval");
  if (maxval != 255) {
    throw pnm_error(path, "maxval " + std::to_string(maxval) +
                              " is not supported; anan_infer reads 8-bit images (maxval 255)");
  }
  if (!std::isspace(in.get())) throw pnm_error(path, "bad PPM/PGM header after maxval");

  image.samples.resize(element_count({image.height, image.width, image.channels}));
  const auto bytes = static_cast<std::streamsize>(image.samples.size());
  in.read(reinterpret_cast<char*>(image.samples.data()), bytes);
  if (in.gcount() != bytes) {
    throw pnm_error(path, "truncated: " + std::to_string(image.width) + "x" +
                              std::to_string(image.height) + " image needs " +
                              std::to_string(bytes) + " pixel bytes, the file has " +
                              std::to_string(in.gcount()));
  }
  return image;
}

}  // namespace anan
