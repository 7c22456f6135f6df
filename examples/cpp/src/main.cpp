// anan_infer: print the class probabilities an ONNX (ANAN) model gives for a batch of images.
// See examples/cpp/README.md and `anan_infer --help`.
#include <algorithm>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "input_file.hpp"
#include "model.hpp"
#include "npy.hpp"
#include "output.hpp"
#include "pnm.hpp"
#include "preprocess.hpp"
#include "tensor.hpp"

namespace fs = std::filesystem;

namespace {

using anan::UserError;

enum class InputKind { Npy, Pnm };

/// Tells a .npy file from a PPM/PGM image by its first bytes (not by its name).
InputKind sniff_input(const fs::path& path) {
  const std::string head = anan::InputFile(path, "input file").read_string(0, 8);
  if (anan::has_npy_magic(head)) return InputKind::Npy;
  if (anan::has_pnm_magic(head)) return InputKind::Pnm;
  throw UserError(path.string() + ": not a .npy file nor a binary PPM (P6) / PGM (P5) image");
}

anan::Tensor load_images(const std::vector<fs::path>& paths, const anan::Model& model,
                         const std::map<std::string, std::string>& metadata,
                         const anan::Options& options) {
  const anan::Preprocessing prep =
      anan::preprocessing_for(model.input(), metadata, {options.scale, options.offset});
  std::vector<anan::Image> images;
  for (const fs::path& path : paths) images.push_back(anan::read_pnm(path));
  anan::check_images(images, prep);
  return anan::images_to_tensor(images, prep);
}

/// Reads the batch: one .npy file, or one or more images.
anan::Tensor load_input(const std::vector<fs::path>& paths, const anan::Model& model,
                        const std::map<std::string, std::string>& metadata,
                        const anan::Options& options) {
  std::vector<InputKind> kinds;
  for (const fs::path& path : paths) kinds.push_back(sniff_input(path));
  const bool all_images = std::all_of(kinds.begin(), kinds.end(),
                                      [](InputKind kind) { return kind == InputKind::Pnm; });
  if (all_images) return load_images(paths, model, metadata, options);
  if (paths.size() != 1) {
    throw UserError("give either one .npy file (holding the whole batch) or PPM/PGM images");
  }
  if (!options.scale.empty() || !options.offset.empty()) {
    throw UserError("--scale and --offset apply to images; a .npy batch is already preprocessed");
  }
  return anan::read_npy(paths.front());
}

/// The output to print: the one named on the command line, else the model's first.
std::string pick_output(const anan::Model& model, const std::string& requested) {
  const auto& outputs = model.outputs();
  if (requested.empty()) return outputs.front().name;
  std::string names;
  for (const anan::TensorSpec& output : outputs) {
    if (output.name == requested) return requested;
    names += (names.empty() ? "" : ", ") + output.name;
  }
  throw UserError("the model has no output '" + requested + "' (it has: " + names + ")");
}

int run(int argc, const char* const argv[]) {
  const anan::Options options = anan::parse_args(argc, argv);
  if (options.help) {
    std::cout << anan::usage_text();
    return 0;
  }
  if (options.version) {
    std::cout << "anan_infer " << ANAN_INFER_VERSION << ", " << anan::onnxruntime_version() << '\n';
    return 0;
  }

  anan::Model model(options.model, options.provider);
  const auto metadata = model.anan_metadata();
  if (options.metadata_only) {
    anan::print_metadata(std::cout, metadata);
    if (metadata.empty() && !options.quiet) {
      std::cerr << "anan_infer: note: " << options.model.string() << " has no anan.* metadata\n";
    }
    return 0;
  }

  const std::string output = pick_output(model, options.output);
  const anan::Tensor input = load_input(options.inputs, model, metadata, options);
  anan::check_shape(model.input(), input.shape);
  if (input.data.empty()) throw UserError("the input batch is empty");
  const anan::Tensor result = model.run(input, output);
  anan::check_finite(result, output);  // a NaN is never printed as a probability
  if (!options.quiet) {  // only after success, so that an error stays one line on stderr
    std::cerr << "# anan.* metadata of " << options.model.string() << '\n';
    anan::print_metadata(std::cerr, metadata);
  }
  anan::print_rows(std::cout, result, options.json);
  return 0;
}

/// Prints "anan_infer: error: <message>" as one line.
void report_error(const char* message) {
  std::string line = message;
  std::replace(line.begin(), line.end(), '\n', ' ');
  std::cerr << "anan_infer: error: " << line << '\n';
}

}  // namespace

int main(int argc, char* argv[]) {
  try {
    return run(argc, argv);
  } catch (const UserError& error) {
    report_error(error.what());
    return 2;
  } catch (const std::exception& error) {
    report_error(error.what());
    return 1;
  }
}
