#include "model.hpp"

#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <string>
#include <utility>

#include "input_file.hpp"

namespace anan {
namespace {

constexpr std::string_view kMetadataPrefix = "anan.";

/// Fetches the API table of the headers' version (ORT_API_MANUAL_INIT is defined), so that
/// a library older than the headers is reported instead of crashing.
void init_api_once() {
  static const bool ready = [] {
    const OrtApiBase* base = OrtGetApiBase();
    const OrtApi* api = base->GetApi(ORT_API_VERSION);
    if (api == nullptr) {
      throw std::runtime_error("onnxruntime library " + std::string(base->GetVersionString()) +
                               " is older than its headers (C API " +
                               std::to_string(ORT_API_VERSION) +
                               "): build against headers no newer than the library");
    }
    Ort::InitApi(api);
    return true;
  }();
  static_cast<void>(ready);
}

Ort::Env make_env() {
  init_api_once();
  return Ort::Env(ORT_LOGGING_LEVEL_WARNING, "anan_infer");
}

void append_cuda(Ort::SessionOptions& options) {
  const std::vector<std::string> available = Ort::GetAvailableProviders();
  if (std::find(available.begin(), available.end(), "CUDAExecutionProvider") == available.end()) {
    std::string names;
    for (const std::string& name : available) names += (names.empty() ? "" : ", ") + name;
    throw UserError("this onnxruntime library (version " +
                    std::string(OrtGetApiBase()->GetVersionString()) +
                    ") has no CUDA execution provider (it has: " + names +
                    "): use the library of an onnxruntime-gpu build, or --provider cpu");
  }
  const OrtApi& api = Ort::GetApi();
  OrtCUDAProviderOptionsV2* raw = nullptr;
  Ort::ThrowOnError(api.CreateCUDAProviderOptions(&raw));
  const std::unique_ptr<OrtCUDAProviderOptionsV2, decltype(api.ReleaseCUDAProviderOptions)>
      cuda_options(raw, api.ReleaseCUDAProviderOptions);
  options.AppendExecutionProvider_CUDA_V2(*cuda_options);  // device 0, default settings
}

Ort::SessionOptions make_options(Provider provider) {
  Ort::SessionOptions options;
  if (provider == Provider::Cuda) append_cuda(options);
  return options;
}

Ort::Session open_session(const Ort::Env& env, const std::filesystem::path& path,
                          Provider provider) {
  {
    // onnxruntime opens the path itself and would block on a FIFO: check it first without
    // blocking. (A path replaced in between is the caller's own race, not untrusted data.)
    const InputFile file(path, "model file");
    if (file.size() == 0) {
      throw UserError("model file " + path.string() + " is empty: pass an .onnx model");
    }
  }
  return Ort::Session(env, path.c_str(), make_options(provider));
}

/// Shape of a tensor-typed input/output; throws UserError for a non-tensor one.
std::vector<int64_t> tensor_shape(const Ort::TypeInfo& info, const std::string& name) {
  if (info.GetONNXType() != ONNX_TYPE_TENSOR) {
    throw UserError("model value '" + name + "' is not a tensor; anan_infer handles tensors only");
  }
  return info.GetTensorTypeAndShapeInfo().GetShape();
}

TensorSpec describe_input(Ort::Session& session) {
  if (session.GetInputCount() != 1) {
    throw UserError("the model has " + std::to_string(session.GetInputCount()) +
                    " inputs; anan_infer feeds models with a single image input");
  }
  Ort::AllocatorWithDefaultOptions allocator;
  TensorSpec spec{session.GetInputNameAllocated(0, allocator).get(), {}};
  const Ort::TypeInfo info = session.GetInputTypeInfo(0);
  spec.shape = tensor_shape(info, spec.name);
  if (info.GetTensorTypeAndShapeInfo().GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
    throw UserError("model input '" + spec.name + "' is not float32; anan_infer feeds float32");
  }
  return spec;
}

std::vector<TensorSpec> describe_outputs(Ort::Session& session) {
  Ort::AllocatorWithDefaultOptions allocator;
  std::vector<TensorSpec> specs;
  for (std::size_t i = 0; i < session.GetOutputCount(); ++i) {
    TensorSpec spec{session.GetOutputNameAllocated(i, allocator).get(), {}};
    const Ort::TypeInfo info = session.GetOutputTypeInfo(i);
    if (info.GetONNXType() == ONNX_TYPE_TENSOR) spec.shape = tensor_shape(info, spec.name);
    specs.push_back(std::move(spec));
  }
  return specs;
}

Tensor to_tensor(const Ort::Value& value, const std::string& name) {
  if (!value.IsTensor()) throw UserError("model output '" + name + "' is not a tensor");
  const auto info = value.GetTensorTypeAndShapeInfo();
  if (info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
    throw UserError("model output '" + name + "' is not float32");
  }
  const float* data = value.GetTensorData<float>();
  return Tensor{info.GetShape(), std::vector<float>(data, data + info.GetElementCount())};
}

}  // namespace

std::string onnxruntime_version() {
  return "onnxruntime " + std::string(OrtGetApiBase()->GetVersionString()) + " (headers: C API " +
         std::to_string(ORT_API_VERSION) + ")";
}

struct Model::Impl {
  Impl(const std::filesystem::path& path, Provider provider)
      : env(make_env()),
        session(open_session(env, path, provider)),
        input(describe_input(session)),
        outputs(describe_outputs(session)) {}

  Ort::Env env;  // must outlive the session
  Ort::Session session;
  TensorSpec input;
  std::vector<TensorSpec> outputs;
};

Model::Model(const std::filesystem::path& path, Provider provider)
    : impl_(std::make_unique<Impl>(path, provider)) {}
Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

std::map<std::string, std::string> Model::anan_metadata() const {
  Ort::AllocatorWithDefaultOptions allocator;
  const Ort::ModelMetadata metadata = impl_->session.GetModelMetadata();
  std::map<std::string, std::string> entries;
  for (const auto& key : metadata.GetCustomMetadataMapKeysAllocated(allocator)) {
    const std::string name = key.get();
    if (name.compare(0, kMetadataPrefix.size(), kMetadataPrefix) != 0) continue;
    entries[name] = metadata.LookupCustomMetadataMapAllocated(name.c_str(), allocator).get();
  }
  return entries;
}

const TensorSpec& Model::input() const { return impl_->input; }

const std::vector<TensorSpec>& Model::outputs() const { return impl_->outputs; }

Tensor Model::run(const Tensor& input, const std::string& output_name) {
  const auto memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  // onnxruntime never writes to an input buffer; CreateTensor just takes a non-const pointer.
  float* data = const_cast<float*>(input.data.data());
  const Ort::Value value = Ort::Value::CreateTensor<float>(
      memory, data, input.data.size(), input.shape.data(), input.shape.size());
  const char* input_names[] = {impl_->input.name.c_str()};
  const char* output_names[] = {output_name.c_str()};
  const std::vector<Ort::Value> results =
      impl_->session.Run(Ort::RunOptions{nullptr}, input_names, &value, 1, output_names, 1);
  return to_tensor(results.front(), output_name);
}

void check_shape(const TensorSpec& spec, const std::vector<int64_t>& actual) {
  const std::string prefix = "input shape " + shape_to_string(actual) +
                             " does not fit the model input '" + spec.name + "' " +
                             shape_to_string(spec.shape) + ": ";
  if (actual.size() != spec.shape.size()) {
    throw UserError(prefix + "rank " + std::to_string(actual.size()) + ", the model needs rank " +
                    std::to_string(spec.shape.size()));
  }
  for (std::size_t i = 0; i < actual.size(); ++i) {
    if (spec.shape[i] >= 0 && spec.shape[i] != actual[i]) {
      throw UserError(prefix + "dimension " + std::to_string(i) + " is " +
                      std::to_string(actual[i]) + ", the model needs " +
                      std::to_string(spec.shape[i]));
    }
  }
}

}  // namespace anan
