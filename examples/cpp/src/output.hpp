// Printing results and metadata.
#pragma once

#include <filesystem>
#include <map>
#include <ostream>
#include <string>

#include "tensor.hpp"

namespace anan {

/// A float with 9 significant digits ("%.9g"), enough for float32 values to round-trip.
std::string format_float(float value);

/// Throws std::runtime_error (exit status 1: the model, not the input, is at fault) when
/// `result` holds a NaN or an infinity, naming its row: such a value is no probability.
void check_finite(const Tensor& result, const std::string& name);

/// One line per row (first dimension) of `result`: its values separated by spaces; with
/// `json`, one JSON array of arrays (non-finite values become null).
void print_rows(std::ostream& out, const Tensor& result, bool json);

/// "key = value" lines, in key order.
void print_metadata(std::ostream& out, const std::map<std::string, std::string>& metadata);

}  // namespace anan
