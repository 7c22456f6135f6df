#include "pnm.hpp"

#include <algorithm>
#include <cctype>
#include <string_view>

#include "input_file.hpp"
#include "tensor.hpp"

namespace anan {
namespace {

constexpr int64_t kMaxSide = 1 << 15;
/// Longest header read (magic, sizes, maxval and '#' comments); real ones take a few bytes.
constexpr std::size_t kMaxHeaderLength = 1 << 16;

UserError pnm_error(const std::filesystem::path& path, const std::string& what) {
  return UserError(path.string() + ": " + what);
}

/// Parses the header fields of a binary PPM/PGM from the file's first bytes.
class PnmHeaderParser {
 public:
  PnmHeaderParser(std::string_view head, const InputFile& file) : head_(head), file_(file) {}

  /// Reads width, height and maxval into `image`; returns where the samples start.
  std::size_t parse(Image& image) {
    image.width = number("width", kMaxSide);
    image.height = number("height", kMaxSide);
    const int64_t maxval = number("maxval", 65535);
    if (maxval != 255) {
      throw pnm_error(file_.path(), "maxval " + std::to_string(maxval) +
                                        " is not supported; anan_infer reads 8-bit images "
                                        "(maxval 255)");
    }
    // Exactly one whitespace byte separates maxval from the samples.
    if (pos_ >= head_.size()) throw incomplete();
    if (!std::isspace(static_cast<unsigned char>(head_[pos_++]))) {
      throw pnm_error(file_.path(), "bad PPM/PGM header after maxval");
    }
    return pos_;
  }

 private:
  /// The header ran past the bytes read: a truncated file, or an absurdly long header.
  UserError incomplete() const {
    if (head_.size() < file_.size()) {
      return pnm_error(file_.path(), "PPM/PGM header longer than " +
                                         std::to_string(kMaxHeaderLength) +
                                         " bytes: re-save the image without long comments");
    }
    return pnm_error(file_.path(), "truncated PPM/PGM header: re-save the image");
  }

  /// Skips whitespace and '#' comments (to the end of the line) between header fields.
  void skip_space_and_comments() {
    while (pos_ < head_.size()) {
      const auto c = static_cast<unsigned char>(head_[pos_]);
      if (c == '#') {
        const std::size_t end = head_.find_first_of("\r\n", pos_);
        pos_ = end == std::string_view::npos ? head_.size() : end;
      } else if (std::isspace(c)) {
        ++pos_;
      } else {
        return;
      }
    }
  }

  /// A positive decimal header field of at most `limit`; digit by digit, so nothing overflows.
  int64_t number(const char* field, int64_t limit) {
    skip_space_and_comments();
    if (pos_ >= head_.size()) throw incomplete();
    int64_t value = 0;
    const std::size_t start = pos_;
    while (pos_ < head_.size() && std::isdigit(static_cast<unsigned char>(head_[pos_]))) {
      value = value * 10 + (head_[pos_++] - '0');
      if (value > limit) {
        throw pnm_error(file_.path(), std::string("PPM/PGM ") + field + " exceeds " +
                                          std::to_string(limit) + ": the image is too large");
      }
    }
    if (pos_ == head_.size()) throw incomplete();  // the field may go on past the bytes read
    if (pos_ == start || value == 0) {
      throw pnm_error(file_.path(),
                      std::string("bad PPM/PGM header: missing or invalid ") + field);
    }
    return value;
  }

  std::string_view head_;
  const InputFile& file_;
  std::size_t pos_ = 2;  // after the magic "P6" / "P5"
};

}  // namespace

bool has_pnm_magic(const std::string& first_bytes) {
  return first_bytes.size() >= 3 && first_bytes[0] == 'P' &&
         (first_bytes[1] == '6' || first_bytes[1] == '5') &&
         std::isspace(static_cast<unsigned char>(first_bytes[2]));
}

Image read_pnm(const std::filesystem::path& path) {
  const InputFile file(path, "input file");
  const std::string head = file.read_string(0, kMaxHeaderLength);
  const std::string_view magic = std::string_view(head).substr(0, 2);
  if (magic != "P6" && magic != "P5") {
    throw pnm_error(path, "not a binary PPM (P6) or PGM (P5) image");
  }
  Image image;
  image.path = path;
  image.channels = magic == "P6" ? 3 : 1;
  const std::size_t offset = PnmHeaderParser(head, file).parse(image);

  // Compare the size the header claims with the file before allocating anything.
  const std::size_t bytes = element_count({image.height, image.width, image.channels});
  const uint64_t available = file.size() - offset;
  if (bytes > available) {
    throw pnm_error(path, "truncated: " + std::to_string(image.width) + "x" +
                              std::to_string(image.height) + " image needs " +
                              std::to_string(bytes) + " pixel bytes, the file has " +
                              std::to_string(available) + ": re-save the image");
  }
  image.samples.resize(bytes);
  if (file.read_at(offset, image.samples.data(), bytes) != bytes) {
    throw pnm_error(path, "the file shrank while being read: read it again");
  }
  return image;
}

}  // namespace anan
