#include "npy.hpp"

#include <array>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "input_file.hpp"

namespace anan {
namespace {

constexpr std::string_view kMagic = "\x93NUMPY";
constexpr std::size_t kPreambleSize = 8;  // the magic string, then major and minor version
/// numpy.load's own default limit (max_header_size); numpy.save writes ~128 bytes for an
/// array of any size, so a longer header is not a plain array.
constexpr uint32_t kMaxHeaderLength = 10000;
constexpr std::size_t kMaxRank = 64;  // NPY_MAXDIMS of numpy 2

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
  uint64_t data_offset = 0;  ///< where the array data starts in the file
};

UserError npy_error(const std::filesystem::path& path, const std::string& what) {
  return UserError(path.string() + ": " + what);
}

/// Unsigned little-endian integer of `size` (2 or 4) bytes at text[offset].
uint32_t little_endian(std::string_view text, std::size_t offset, std::size_t size) {
  uint32_t value = 0;
  for (std::size_t i = size; i-- > 0;) {
    value = (value << 8) | static_cast<unsigned char>(text[offset + i]);
  }
  return value;
}

/// Checks the magic string and version, and returns the header text (the Python dict
/// literal), bounded by kMaxHeaderLength and by the file's size before anything is allocated.
std::string read_header_text(const InputFile& file, uint64_t& data_offset) {
  const std::filesystem::path& path = file.path();
  const std::string preamble = file.read_string(0, kPreambleSize + 4);
  if (preamble.size() < kPreambleSize || preamble.compare(0, kMagic.size(), kMagic) != 0) {
    throw npy_error(path, "not a .npy file (no \\x93NUMPY magic): save it with numpy.save");
  }
  const int major = static_cast<unsigned char>(preamble[6]);
  const int minor = static_cast<unsigned char>(preamble[7]);
  if (major < 1 || major > 3 || minor != 0) {
    throw npy_error(path, ".npy format version " + std::to_string(major) + "." +
                              std::to_string(minor) +
                              " is not supported (1.0, 2.0 or 3.0 are): save it with numpy.save");
  }
  const std::size_t length_size = major == 1 ? 2 : 4;
  if (preamble.size() < kPreambleSize + length_size) {
    throw npy_error(path, "truncated .npy header: re-save the array with numpy.save");
  }
  const uint32_t length = little_endian(preamble, kPreambleSize, length_size);
  const uint64_t offset = kPreambleSize + length_size;
  if (length > kMaxHeaderLength) {
    throw npy_error(path, ".npy header length " + std::to_string(length) + " exceeds " +
                              std::to_string(kMaxHeaderLength) +
                              " bytes (numpy's own limit): not a plain array; re-save it with "
                              "numpy.save");
  }
  if (length > file.size() - offset) {
    throw npy_error(path, "truncated .npy header: it claims " + std::to_string(length) +
                              " bytes, the file has " + std::to_string(file.size() - offset) +
                              " after the preamble; re-save the array with numpy.save");
  }
  data_offset = offset + length;
  return file.read_string(offset, length);
}

/// A strict parser of the header dict numpy.save writes:
/// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 64, 64, 3), }
/// No arithmetic here can overflow: each dimension is bounded by kMaxElements digit by digit.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::filesystem::path& path)
      : text_(text), path_(path) {}

  NpyHeader parse() {
    NpyHeader header;
    std::array<bool, kKeys.size()> seen{};
    expect('{');
    while (!consume('}')) {
      const std::string key = quoted_string();
      expect(':');
      const std::size_t index = key_index(key);
      if (index == kKeys.size() || seen[index]) {
        throw malformed((index == kKeys.size() ? "unexpected key '" : "repeated key '") + key +
                        "'");
      }
      seen[index] = true;
      if (index == 0) header.descr = descr();
      if (index == 1) header.fortran_order = boolean();
      if (index == 2) header.shape = shape();
      if (!consume(',')) {
        expect('}');
        break;
      }
    }
    skip_space();
    if (pos_ != text_.size()) throw malformed("text after the closing '}'");
    for (std::size_t i = 0; i < seen.size(); ++i) {
      if (!seen[i]) throw malformed("no '" + std::string(kKeys[i]) + "' key");
    }
    return header;
  }

 private:
  static constexpr std::array<std::string_view, 3> kKeys{"descr", "fortran_order", "shape"};

  /// Index of `key` in kKeys; kKeys.size() for any other key.
  static std::size_t key_index(std::string_view key) {
    std::size_t i = 0;
    while (i < kKeys.size() && kKeys[i] != key) ++i;
    return i;
  }

  UserError malformed(const std::string& what) const {
    return npy_error(path_, "malformed .npy header (" + what + " at byte " +
                                std::to_string(pos_) + "): re-save the array with numpy.save");
  }

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  /// Skips spaces, then takes `c` if it is next.
  bool consume(char c) {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  void expect(char c) {
    if (!consume(c)) throw malformed(std::string("expected '") + c + "'");
  }

  bool digit_next() const {
    return pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]));
  }

  /// A '...' or "..." string without escapes.
  std::string quoted_string() {
    skip_space();
    const char quote = pos_ < text_.size() ? text_[pos_] : '\0';
    const std::size_t end = text_.find(quote, pos_ + 1);
    if ((quote != '\'' && quote != '"') || end == std::string_view::npos) {
      throw malformed("expected a quoted string");
    }
    const std::string_view value = text_.substr(pos_ + 1, end - pos_ - 1);
    if (value.find('\\') != std::string_view::npos) throw malformed("escape in a string");
    pos_ = end + 1;
    return std::string(value);
  }

  std::string descr() {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == '[') {
      throw npy_error(path_, "structured dtypes are not supported: save a plain float32 array");
    }
    return quoted_string();
  }

  bool boolean() {
    skip_space();
    for (const auto& [word, value] : {std::pair{"True", true}, std::pair{"False", false}}) {
      const std::string_view name = word;
      if (text_.substr(pos_, name.size()) == name) {
        pos_ += name.size();
        return value;
      }
    }
    throw malformed("'fortran_order' is neither True nor False");
  }

  /// One dimension: decimal digits (an 'L' suffix of Python 2 allowed), at most kMaxElements.
  int64_t dimension() {
    skip_space();
    if (!digit_next()) throw malformed("expected a non-negative integer dimension");
    const std::size_t start = pos_;
    uint64_t value = 0;
    while (digit_next()) {
      const auto digit = static_cast<uint64_t>(text_[pos_++] - '0');
      if (value > (kMaxElements - digit) / 10) throw too_large(start);
      value = value * 10 + digit;
    }
    if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;
    return static_cast<int64_t>(value);
  }

  UserError too_large(std::size_t start) const {
    const std::size_t end = text_.find_first_not_of("0123456789", start);
    std::string digits(text_.substr(start, end == std::string_view::npos ? end : end - start));
    if (digits.size() > 30) digits = digits.substr(0, 30) + "...";
    return npy_error(path_, "dimension " + digits +
                                " in the .npy header's shape exceeds 2^40: not a real array; "
                                "re-save it with numpy.save");
  }

  /// A Python tuple of dimensions: "()", "(3,)", "(2, 64, 64, 3)" (a trailing comma allowed).
  std::vector<int64_t> shape() {
    expect('(');
    std::vector<int64_t> dims;
    bool comma = false;
    while (!consume(')')) {
      if (!dims.empty() && !comma) throw malformed("expected ',' or ')' in 'shape'");
      if (dims.size() == kMaxRank) throw malformed("more than 64 dimensions in 'shape'");
      dims.push_back(dimension());
      comma = consume(',');
    }
    if (dims.size() == 1 && !comma) throw malformed("'shape' (n) is not a tuple, (n,) is");
    return dims;
  }

  std::string_view text_;
  const std::filesystem::path& path_;
  std::size_t pos_ = 0;
};

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

/// Compares the data size the shape claims with what the file holds, before any allocation.
/// Bytes after the array are ignored, as numpy.load does.
std::size_t checked_data_bytes(const NpyHeader& header, const InputFile& file) {
  const std::size_t count = element_count(header.shape);  // <= kMaxElements, else UserError
  const uint64_t bytes = uint64_t{count} * sizeof(float);
  const uint64_t available = file.size() - header.data_offset;
  if (bytes > available) {
    throw npy_error(file.path(), "truncated: shape " + shape_to_string(header.shape) + " needs " +
                                     std::to_string(bytes) + " data bytes, the file has " +
                                     std::to_string(available) +
                                     " after its header; re-save the array with numpy.save");
  }
  return static_cast<std::size_t>(bytes);
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
  const InputFile file(path, "input file");
  uint64_t data_offset = 0;
  const std::string text = read_header_text(file, data_offset);
  NpyHeader header = HeaderParser(text, path).parse();
  header.data_offset = data_offset;
  check_supported(header, path);

  const std::size_t bytes = checked_data_bytes(header, file);
  Tensor tensor{header.shape, std::vector<float>(bytes / sizeof(float))};
  if (file.read_at(header.data_offset, tensor.data.data(), bytes) != bytes) {
    throw npy_error(path, "the file shrank while being read: read it again");
  }
  to_host_order(tensor.data);
  return tensor;
}

}  // namespace anan
