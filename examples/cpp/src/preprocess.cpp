#include "preprocess.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <optional>

namespace anan {
namespace {

std::optional<std::string> lookup(const std::map<std::string, std::string>& metadata,
                                  const std::string& key) {
  const auto it = metadata.find(key);
  if (it == metadata.end()) return std::nullopt;
  return it->second;
}

UserError bad_number(const std::string& key, const std::string& text) {
  return UserError("model metadata " + key + " = '" + text + "' is not a valid number");
}

/// The finite number stored under `key`, or `fallback` when the key is absent.
double metadata_double(const std::map<std::string, std::string>& metadata,
                       const std::string& key, double fallback) {
  const auto text = lookup(metadata, key);
  if (!text) return fallback;
  std::size_t used = 0;
  try {
    const double value = std::stod(*text, &used);
    if (used == text->size() && std::isfinite(value)) return value;
  } catch (const std::logic_error&) {  // invalid_argument, out_of_range
  }
  throw bad_number(key, *text);
}

/// The positive integer stored under `key`, or -1 when the key is absent.
int64_t metadata_int(const std::map<std::string, std::string>& metadata, const std::string& key) {
  const auto text = lookup(metadata, key);
  if (!text) return -1;
  std::size_t used = 0;
  try {
    const int64_t value = std::stoll(*text, &used);
    if (used == text->size() && value > 0) return value;  // <= 0 would read as "any size"
  } catch (const std::logic_error&) {
  }
  throw UserError("model metadata " + key + " = '" + *text + "' is not a positive integer");
}

bool is_channel_count(int64_t dim) { return dim == 1 || dim == 3; }

/// anan.layout if present, else NCHW when only dimension 1 looks like channels, else NHWC
/// when dimension 3 does.
Layout resolve_layout(const TensorSpec& input,
                      const std::map<std::string, std::string>& metadata) {
  if (const auto text = lookup(metadata, "anan.layout")) {
    std::string upper = *text;
    std::transform(upper.begin(), upper.end(), upper.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    if (upper == "NHWC") return Layout::NHWC;
    if (upper == "NCHW") return Layout::NCHW;
    throw UserError("model metadata anan.layout = '" + *text + "' is neither NHWC nor NCHW");
  }
  const auto& shape = input.shape;
  if (is_channel_count(shape[1]) && !is_channel_count(shape[3])) return Layout::NCHW;
  if (is_channel_count(shape[3])) return Layout::NHWC;
  throw UserError("cannot tell whether model input " + shape_to_string(shape) +
                  " is NHWC or NCHW (no anan.layout metadata): pass a .npy batch instead");
}

/// The model's fixed dimension, else the metadata value, else -1.
int64_t fixed_or_metadata(int64_t dim, const std::map<std::string, std::string>& metadata,
                          const std::string& key) {
  return dim >= 0 ? dim : metadata_int(metadata, key);
}

std::string size_text(int64_t height, int64_t width, int64_t channels) {
  const auto text = [](int64_t v) { return v < 0 ? std::string("?") : std::to_string(v); };
  return text(height) + "x" + text(width) + "x" + text(channels) + " (HxWxC)";
}

bool fits(int64_t needed, int64_t actual) { return needed < 0 || needed == actual; }

}  // namespace

Preprocessing preprocessing_for(const TensorSpec& input,
                                const std::map<std::string, std::string>& metadata) {
  if (input.shape.size() != 4) {
    throw UserError("model input '" + input.name + "' " + shape_to_string(input.shape) +
                    " is not a 4-d image batch: pass a .npy file instead of images");
  }
  Preprocessing prep;
  prep.layout = resolve_layout(input, metadata);
  const bool nhwc = prep.layout == Layout::NHWC;
  const auto& shape = input.shape;
  prep.height = fixed_or_metadata(nhwc ? shape[1] : shape[2], metadata, "anan.height");
  prep.width = fixed_or_metadata(nhwc ? shape[2] : shape[3], metadata, "anan.width");
  prep.channels = fixed_or_metadata(nhwc ? shape[3] : shape[1], metadata, "anan.channels");
  prep.scale = metadata_double(metadata, "anan.scale", 1.0);
  prep.offset = metadata_double(metadata, "anan.offset", 0.0);
  return prep;
}

void check_images(const std::vector<Image>& images, const Preprocessing& prep) {
  const Image& first = images.front();
  for (const Image& image : images) {
    const std::string size = size_text(image.height, image.width, image.channels);
    if (!fits(prep.height, image.height) || !fits(prep.width, image.width) ||
        !fits(prep.channels, image.channels)) {
      const std::string kind = prep.channels == 1   ? " (P5 grey)"
                               : prep.channels == 3 ? " (P6 RGB)"
                                                    : "";
      throw UserError("image " + image.path.string() + " is " + size + ", the model needs " +
                      size_text(prep.height, prep.width, prep.channels) + kind +
                      ": resize/convert it first");
    }
    if (image.height != first.height || image.width != first.width ||
        image.channels != first.channels) {
      throw UserError("image " + image.path.string() + " is " + size + " but " +
                      first.path.string() + " is " +
                      size_text(first.height, first.width, first.channels) +
                      ": all images of a batch must have one size");
    }
  }
}

Tensor images_to_tensor(const std::vector<Image>& images, const Preprocessing& prep) {
  const Image& first = images.front();
  const auto n = static_cast<int64_t>(images.size());
  const int64_t h = first.height, w = first.width, c = first.channels;
  Tensor tensor;
  tensor.shape = prep.layout == Layout::NHWC ? std::vector<int64_t>{n, h, w, c}
                                             : std::vector<int64_t>{n, c, h, w};
  tensor.data.resize(element_count(tensor.shape));
  // float32 arithmetic, as anan-onnx's Python preprocessing, so that both give equal bits.
  const auto scale = static_cast<float>(prep.scale);
  const auto offset = static_cast<float>(prep.offset);
  for (int64_t i = 0; i < n; ++i) {
    const std::vector<uint8_t>& samples = images[static_cast<std::size_t>(i)].samples;
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        for (int64_t k = 0; k < c; ++k) {
          const int64_t source = (y * w + x) * c + k;  // interleaved HWC
          const int64_t target = prep.layout == Layout::NHWC ? ((i * h + y) * w + x) * c + k
                                                             : ((i * c + k) * h + y) * w + x;
          const float pixel = samples[static_cast<std::size_t>(source)];
          tensor.data[static_cast<std::size_t>(target)] = pixel * scale + offset;
        }
      }
    }
  }
  return tensor;
}

}  // namespace anan
