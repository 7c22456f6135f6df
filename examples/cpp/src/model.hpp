// The onnxruntime session behind anan_infer. Only model.cpp includes the onnxruntime headers.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tensor.hpp"

namespace anan {

enum class Provider { Cpu, Cuda };

/// Name and shape of a model input or output; dynamic dimensions are -1.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
};

/// "onnxruntime <library version> (headers: C API <n>)".
std::string onnxruntime_version();

/// An onnxruntime inference session of a model with one float32 input.
class Model {
 public:
  /// Loads the model; throws UserError for a missing file, an unusable input or an
  /// unavailable provider, and Ort::Exception (a std::exception) for onnxruntime failures.
  Model(const std::filesystem::path& path, Provider provider);
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  /// The custom metadata entries whose key starts with "anan.", sorted by key.
  std::map<std::string, std::string> anan_metadata() const;
  const TensorSpec& input() const;
  const std::vector<TensorSpec>& outputs() const;

  /// Runs the model on `input` (its shape must fit input(); see check_shape) and returns
  /// the float32 output named `output_name`.
  Tensor run(const Tensor& input, const std::string& output_name);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Throws a one-line UserError unless `actual` has the rank of `spec` and equals each of
/// its fixed dimensions (dynamic ones, typically the batch, accept any size).
void check_shape(const TensorSpec& spec, const std::vector<int64_t>& actual);

}  // namespace anan
