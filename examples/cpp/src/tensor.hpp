// Types shared by all parts of anan_infer: a float tensor and the user-error exception.
#pragma once

#include <cstddef>
#include <cstdint>
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

/// Number of elements of a shape whose dimensions are all >= 0.
inline std::size_t element_count(const std::vector<int64_t>& shape) {
  std::size_t count = 1;
  for (int64_t dim : shape) count *= static_cast<std::size_t>(dim);
  return count;
}

}  // namespace anan
