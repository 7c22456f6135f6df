// Types shared by all parts of anan_infer: a float tensor and the user-error exception.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace anan {

/// A problem caused by the user's input (a flag, a file, a shape). main() prints its
/// one-line message and exits with status 2; any other exception exits with status 1.
class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A dense float32 tensor in C (row-major) order.
struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

/// Formats a shape as "[2, 64, 64, 3]"; dynamic (negative) dimensions print as "?".
inline std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) text += ", ";
    text += shape[i] < 0 ? std::string("?") : std::to_string(shape[i]);
  }
  return text + "]";
}

/// Most elements anan_infer accepts in one tensor: 2^40 (4 TiB of float32), far beyond any
/// real batch, yet small enough that byte counts and onnxruntime's own size arithmetic
/// cannot overflow.
constexpr uint64_t kMaxElements = uint64_t{1} << 40;

/// Number of elements of a shape whose dimensions are all >= 0. Throws UserError when the
/// product exceeds kMaxElements (or size_t); zero dimensions count as one while checking,
/// so that a zero cannot hide an overflowing product of the others. Never overflows itself.
inline std::size_t element_count(const std::vector<int64_t>& shape) {
  const uint64_t limit =
      std::min<uint64_t>(kMaxElements, std::numeric_limits<std::size_t>::max() / sizeof(float));
  uint64_t count = 1;
  bool has_zero = false;
  for (int64_t dim : shape) {
    const auto size = static_cast<uint64_t>(dim);
    if (dim < 0 || (size > 1 && count > limit / size)) {
      throw UserError("shape " + shape_to_string(shape) + " is too large (more than 2^40 " +
                      "elements, or a negative dimension): pass a smaller batch");
    }
    has_zero = has_zero || size == 0;
    count *= std::max<uint64_t>(size, 1);
  }
  return has_zero ? 0 : static_cast<std::size_t>(count);
}

}  // namespace anan
