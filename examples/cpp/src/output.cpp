#include "output.hpp"

#include <array>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace anan {
namespace {

/// Rows are the first dimension; a scalar output is one row.
std::size_t row_count(const Tensor& result) {
  return result.shape.empty() ? 1 : static_cast<std::size_t>(result.shape.front());
}

std::string json_number(float value) {
  return std::isfinite(value) ? format_float(value) : std::string("null");
}

/// `text` with line breaks escaped, so that each entry stays on one line.
std::string one_line(const std::string& text) {
  std::string escaped;
  for (const char c : text) {
    if (c == '\n') {
      escaped += "\\n";
    } else if (c == '\r') {
      escaped += "\\r";
    } else {
      escaped += c;
    }
  }
  return escaped;
}

}  // namespace

std::string format_float(float value) {
  std::array<char, 32> buffer{};
  std::snprintf(buffer.data(), buffer.size(), "%.9g", static_cast<double>(value));
  return buffer.data();
}

void check_finite(const Tensor& result, const std::string& name) {
  const std::size_t rows = row_count(result);
  const std::size_t columns = rows == 0 ? 0 : result.data.size() / rows;
  for (std::size_t i = 0; i < result.data.size(); ++i) {
    if (std::isfinite(result.data[i])) continue;
    throw std::runtime_error("the model's output '" + name + "' is " +
                             format_float(result.data[i]) + " for image " +
                             std::to_string(columns == 0 ? 0 : i / columns) +
                             " (not a finite number): no result is printed; check the model "
                             "and its input with anan-onnx verify");
  }
}

void print_rows(std::ostream& out, const Tensor& result, bool json) {
  const std::size_t rows = row_count(result);
  const std::size_t columns = rows == 0 ? 0 : result.data.size() / rows;
  if (json) out << '[';
  for (std::size_t r = 0; r < rows; ++r) {
    if (json) out << (r > 0 ? ", [" : "[");
    for (std::size_t c = 0; c < columns; ++c) {
      const float value = result.data[r * columns + c];
      if (c > 0) out << (json ? ", " : " ");
      out << (json ? json_number(value) : format_float(value));
    }
    out << (json ? "]" : "\n");
  }
  if (json) out << "]\n";
}

void print_metadata(std::ostream& out, const std::map<std::string, std::string>& metadata) {
  for (const auto& [key, value] : metadata) out << key << " = " << one_line(value) << '\n';
}

}  // namespace anan
