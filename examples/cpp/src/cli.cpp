#include "cli.hpp"

#include <optional>
#include <string_view>

#include "tensor.hpp"

namespace anan {
namespace {

Provider parse_provider(std::string_view name) {
  if (name == "cpu") return Provider::Cpu;
  if (name == "cuda") return Provider::Cuda;
  throw UserError("unknown provider '" + std::string(name) + "': use --provider cpu or cuda");
}

struct OptionArg {
  std::string_view name;
  std::optional<std::string_view> value;  ///< set for "--name=value"
};

OptionArg split_option(std::string_view arg) {
  const std::size_t eq = arg.find('=');
  if (arg.substr(0, 2) != "--" || eq == std::string_view::npos) return {arg, std::nullopt};
  return {arg.substr(0, eq), arg.substr(eq + 1)};
}

}  // namespace

std::string usage_text() {
  return R"(usage: anan_infer [options] MODEL.onnx [INPUT...]

Runs an ONNX image classifier (an ANAN model made by anan-onnx, or any single-input
float32 CNN) with onnxruntime and prints one line of probabilities per image.

INPUT is either
  one .npy file    a float32 ('<f4', C order) batch shaped like the model input,
                   already preprocessed; or
  PPM/PGM images   binary P6 (RGB) or P5 (grey) files with maxval 255, of the model's
                   height x width (no resizing). Channel c becomes pixel[c] *
                   scale[c] + offset[c] with anan.scale and anan.offset (model
                   metadata: one number, or one per channel), after reordering RGB to
                   BGR when anan.channel_order is BGR, arranged by anan.layout (NHWC or
                   NCHW) into one batch. A model that records no anan.scale is refused
                   unless --scale is given.
The input's shape must equal the model input's fixed dimensions (the batch may vary).

options:
  --json             print a JSON array of arrays instead of text lines
  --metadata         print the model's anan.* metadata to stdout ("key = value",
                     sorted) and exit; INPUT is not needed
  --provider P       cpu (default) or cuda (needs an onnxruntime built with CUDA)
  --output NAME      the model output to print (default: the first one)
  --scale S          pixel scale for images, one number or one per channel
                     (0.0171,0.0175,0.0174); overrides anan.scale
  --offset O         added after scaling, likewise; overrides anan.offset (default 0)
  -q, --quiet        do not print the metadata block and notes to stderr
  --version          print the anan_infer and onnxruntime versions
  -h, --help         show this help

output: stdout holds only the results: per image, its output values separated by
spaces, each with 9 significant digits (float32 round-trips). A normal run also prints
the anan.* metadata to stderr ("# ..." header, then "key = value" lines).
exit status: 0 success, 2 bad usage or input (message on stderr, one line),
1 other failures (onnxruntime errors, or an output that is NaN or infinite: such a
result is never printed as one).
)";
}

Options parse_args(int argc, const char* const argv[]) {
  Options options;
  std::vector<std::string_view> positional;
  bool options_done = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (options_done || arg.empty() || arg.front() != '-' || arg == "-") {
      positional.push_back(arg);
      continue;
    }
    const OptionArg option = split_option(arg);
    const std::string_view name = option.name;
    const auto value = [&]() -> std::string_view {
      if (option.value) return *option.value;
      if (i + 1 >= argc) throw UserError("option " + std::string(name) + " needs a value");
      return argv[++i];
    };
    const auto flag = [&]() {
      if (option.value) throw UserError("option " + std::string(name) + " takes no value");
      return true;
    };
    if (name == "--") {
      options_done = flag();
    } else if (name == "-h" || name == "--help") {
      options.help = flag();
    } else if (name == "--version") {
      options.version = flag();
    } else if (name == "--json") {
      options.json = flag();
    } else if (name == "--metadata") {
      options.metadata_only = flag();
    } else if (name == "-q" || name == "--quiet") {
      options.quiet = flag();
    } else if (name == "--provider") {
      options.provider = parse_provider(value());
    } else if (name == "--output") {
      options.output = std::string(value());
    } else if (name == "--scale") {
      options.scale = std::string(value());
      if (options.scale.empty()) throw UserError("--scale needs a number");
    } else if (name == "--offset") {
      options.offset = std::string(value());
      if (options.offset.empty()) throw UserError("--offset needs a number");
    } else {
      throw UserError("unknown option " + std::string(arg) + " (see --help)");
    }
  }
  if (options.help || options.version) return options;
  if (positional.empty()) throw UserError("no model given (see --help)");
  options.model = std::filesystem::path(positional.front());
  options.inputs.assign(positional.begin() + 1, positional.end());
  if (options.inputs.empty() && !options.metadata_only) {
    throw UserError("no input given: pass a .npy batch or PPM images after the model (see --help)");
  }
  return options;
}

}  // namespace anan
