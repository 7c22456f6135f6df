#include "npy.hpp"

#include <array>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>

namespace anan {
namespace {

constexpr std::string_view kMagic = "\x93NUMPY";

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

UserError npy_error(const std::filesystem::path& path, const std::string& what) {
  return UserError(path.string() + ": " + what);
}

/// Reads an unsigned little-endian integer of `size` bytes.
uint32_t read_le(std::istream& in, std::size_t size) {
  std::array<unsigned char, 4> bytes{};
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  uint32_t value = 0;
  for (std::size_t i = size; i-- > 0;) value = (value << 8) | bytes[i];
  return value;
}

/// Reads the magic string, version and header text (the Python dict literal).
std::string read_header_text(std::istream& in, const std::filesystem::path& path) {
  std::array<char, 8> preamble{};
  in.read(preamble.data(), preamble.size());
  if (!in || std::string_view(preamble.data(), kMagic.size()) != kMagic) {
    throw npy_error(path, "not a .npy file (no \\x93NUMPY magic): save it with numpy.save");
  }
  const int major = static_cast<unsigned char>(preamble[6]);
  if (major < 1 || major > 3) {
    throw npy_error(path, ".npy format version " + std::to_string(major) +
                              " is not supported (1, 2 or 3 are)");
  }
  const uint32_t length = read_le(in, major == 1 ? 2 : 4);
  std::string text(length, '\0');
  in.read(text.data(), static_cast<std::streamsize>(length));
  if (!in) throw npy_error(path, "truncated .npy header");
  return text;
}

/// The text right after `'key':` in the header dict (leading spaces skipped).
std::string_view value_of(std::string_view dict, std::string_view key,
                          const std::filesystem::path& path) {
  const std::string quoted = "'" + std::string(key) + "'";
  std::size_t pos = dict.find(quoted);
  if (pos == std::string_view::npos) pos = dict.find("\"" + std::string(key) + "\"");
  if (pos == std::string_view::npos) {
    throw npy_error(path, "header lacks '" + std::string(key) + "'");
  }
  pos = dict.find(':', pos + quoted.size());
  if (pos == std::string_view::npos) throw npy_error(path, "malformed .npy header");
  pos = dict.find_first_not_of(" \t", pos + 1);
  if (pos == std::string_view::npos) throw npy_error(path, "malformed .npy header");
  return dict.substr(pos);
}

std::string parse_quoted(std::string_view text, const std::filesystem::path& path) {
  const char quote = text.empty() ? '\0' : text.front();
  const std::size_t end = text.find(quote, 1);
  if ((quote != '\'' && quote != '"') || end == std::string_view::npos) {
    throw npy_error(path, "structured dtypes are not supported: save a plain float32 array");
  }
  return std::string(text.substr(1, end - 1));
}

bool parse_bool(std::string_view text, const std::filesystem::path& path) {
  if (text.substr(0, 4) == "True") return true;
  if (text.substr(0, 5) == "False") return false;
  throw npy_error(path, "malformed 'fortran_order' in .npy header");
}

/// Parses a Python tuple of non-negative integers: "()", "(3,)", "(2, 64, 64, 3)".
std::vector<int64_t> parse_shape(std::string_view text, const std::filesystem::path& path) {
  const std::size_t close = text.find(')');
  if (text.empty() || text.front() != '(' || close == std::string_view::npos) {
    throw npy_error(path, "malformed 'shape' in .npy header");
  }
  std::vector<int64_t> shape;
  const std::string_view items = text.substr(1, close - 1);
  std::size_t i = 0;
  while (i < items.size()) {
    if (std::isdigit(static_cast<unsigned char>(items[i]))) {
      int64_t dim = 0;
      while (i < items.size() && std::isdigit(static_cast<unsigned char>(items[i]))) {
        dim = dim * 10 + (items[i++] - '0');
      }
      shape.push_back(dim);
    } else if (items[i] == ',' || items[i] == ' ' || items[i] == 'L') {
      ++i;
    } else {
      throw npy_error(path, "malformed 'shape' in .npy header");
    }
  }
  return shape;
}

NpyHeader parse_header(std::string_view dict, const std::filesystem::path& path) {
  NpyHeader header;
  header.descr = parse_quoted(value_of(dict, "descr", path), path);
  header.fortran_order = parse_bool(value_of(dict, "fortran_order", path), path);
  header.shape = parse_shape(value_of(dict, "shape", path), path);
  return header;
}

void check_supported(const NpyHeader& header, const std::filesystem::path& path) {
  if (header.descr != "<f4") {
    throw npy_error(path, "dtype '" + header.descr +
                              "' is not supported; anan_infer reads float32 ('<f4') only: "
                              "save arr.astype(numpy.float32)");
  }
  if (header.fortran_order) {
    throw npy_error(path, "Fortran-ordered arrays are not supported: save "
                          "numpy.ascontiguousarray(arr)");
  }
}

bool host_is_little_endian() {
  const uint16_t probe = 1;
  unsigned char first = 0;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}

/// Converts little-endian float32 values in place on a big-endian host.
void to_host_order(std::vector<float>& values) {
  if (host_is_little_endian()) return;
  for (float& value : values) {
    std::array<unsigned char, sizeof(float)> bytes{};
    std::memcpy(bytes.data(), &value, sizeof(float));
    std::swap(bytes[0], bytes[3]);
    std::swap(bytes[1], bytes[2]);
    std::memcpy(&value, bytes.data(), sizeof(float));
  }
}

}  // namespace

bool has_npy_magic(const std::string& first_bytes) {
  return std::string_view(first_bytes).substr(0, kMagic.size()) == kMagic;
}

Tensor read_npy(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError("cannot open input file " + path.string());
  const NpyHeader header = parse_header(read_header_text(in, path), path);
  check_supported(header, path);

  Tensor tensor{header.shape, std::vector<float>(element_count(header.shape))};
  const auto bytes = static_cast<std::streamsize>(tensor.data.size() * sizeof(float));
  in.read(reinterpret_cast<char*>(tensor.data.data()), bytes);
  if (in.gcount() != bytes) {
    throw npy_error(path, "truncated: shape " + shape_to_string(header.shape) + " needs " +
                              std::to_string(bytes) + " data bytes, the file has " +
                              std::to_string(in.gcount()));
  }
  to_host_order(tensor.data);
  return tensor;
}

}  // namespace anan
