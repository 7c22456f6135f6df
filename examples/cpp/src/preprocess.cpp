#include "preprocess.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <vector>

namespace anan {
namespace {

std::optional<std::string> lookup(const std::map<std::string, std::string>& metadata,
                                  const std::string& key) {
  const auto it = metadata.find(key);
  if (it == metadata.end()) return std::nullopt;
  return it->second;
}

/// `text` without leading and trailing blanks.
std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

/// One finite number, or one per channel ("0.0171,0.0175,0.0174"), as the metadata and
/// the command line write them; `where` names the source in errors.
std::vector<double> parse_numbers(const std::string& text, const std::string& where) {
  std::vector<double> values;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    const std::string item = trim(text.substr(start, comma - start));
    std::size_t used = 0;
    double value = 0;
    try {
      value = std::stod(item, &used);
    } catch (const std::logic_error&) {  // invalid_argument, out_of_range
      used = 0;
    }
    if (item.empty() || used != item.size() || !std::isfinite(value)) {
      throw UserError(where + " = '" + text +
                      "' is not a finite number nor a comma-separated list of them");
    }
    values.push_back(value);
    if (comma == std::string::npos) return values;
    start = comma + 1;
  }
}

/// The upper-case value of `key`, or `fallback` when absent.
std::string metadata_word(const std::map<std::string, std::string>& metadata,
                          const std::string& key, const std::string& fallback) {
  std::string word = lookup(metadata, key).value_or(fallback);
  std::transform(word.begin(), word.end(), word.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return word;
}

/// Refuses a resize or aspect rule this program does not reproduce: its input would not be
/// the tensor anan-onnx's Python makes.
void require_word(const std::map<std::string, std::string>& metadata, const std::string& key,
                  const std::string& supported) {
  if (metadata_word(metadata, key, supported) == supported) return;
  std::string lower = supported;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  throw UserError("model metadata " + key + " = '" + *lookup(metadata, key) +
                  "' is not supported by anan_infer (only " + lower +
                  "): pass a .npy batch preprocessed by anan-onnx instead of images");
}

/// Scale or offset: the command line's, else the metadata's, else `fallback` (when set).
std::vector<double> scaling(const std::map<std::string, std::string>& metadata,
                            const std::string& key, const std::string& given,
                            const std::string& option, std::optional<double> fallback) {
  if (!given.empty()) return parse_numbers(given, option);
  if (const auto text = lookup(metadata, key)) return parse_numbers(*text, "model metadata " + key);
  if (fallback) return {*fallback};
  throw UserError("the model records no " + key +
                  " (how pixels 0-255 become its input): pass " + option +
                  " (e.g. " + option + " 0.00392156862745098 for pixel/255), or convert the " +
                  "model with anan-onnx, which records it");
}

/// Refuses a per-channel list whose length is not the channel count (when known).
void check_per_channel(const std::vector<double>& values, int64_t channels,
                       const std::string& what) {
  if (values.size() == 1 || channels < 0 || values.size() == static_cast<std::size_t>(channels)) {
    return;
  }
  throw UserError(what + " has " + std::to_string(values.size()) +
                  " values but the model has " + std::to_string(channels) +
                  " channels: give one value, or one per channel");
}

float channel_value(const std::vector<double>& values, int64_t channel) {
  return static_cast<float>(values.size() == 1 ? values.front()
                                               : values[static_cast<std::size_t>(channel)]);
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
                                const std::map<std::string, std::string>& metadata,
                                const ScalingOverride& given) {
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
  prep.scale = scaling(metadata, "anan.scale", given.scale, "--scale", std::nullopt);
  // an offset alone is never a guess: a model recording a scale and no offset has none
  prep.offset = scaling(metadata, "anan.offset", given.offset, "--offset", 0.0);
  check_per_channel(prep.scale, prep.channels, "the scale");
  check_per_channel(prep.offset, prep.channels, "the offset");
  for (const double value : prep.scale) {
    if (value == 0) throw UserError("the scale must not be 0 (every input would be equal)");
  }
  const std::string order = metadata_word(metadata, "anan.channel_order", "RGB");
  if (order != "RGB" && order != "BGR") {
    throw UserError("model metadata anan.channel_order = '" + *lookup(metadata, "anan.channel_order") +
                    "' is neither RGB nor BGR");
  }
  prep.bgr = order == "BGR";
  require_word(metadata, "anan.resize", "BILINEAR");
  require_word(metadata, "anan.aspect", "STRETCH");
  return prep;
}

void check_images(const std::vector<Image>& images, const Preprocessing& prep) {
  const Image& first = images.front();
  check_per_channel(prep.scale, first.channels, "the scale");
  check_per_channel(prep.offset, first.channels, "the offset");
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
  for (int64_t i = 0; i < n; ++i) {
    const std::vector<uint8_t>& samples = images[static_cast<std::size_t>(i)].samples;
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        for (int64_t k = 0; k < c; ++k) {
          // interleaved HWC, RGB or grey; BGR takes channel k from the RGB's c - 1 - k
          const int64_t source = (y * w + x) * c + (prep.bgr && c == 3 ? c - 1 - k : k);
          const int64_t target = prep.layout == Layout::NHWC ? ((i * h + y) * w + x) * c + k
                                                             : ((i * c + k) * h + y) * w + x;
          const float pixel = samples[static_cast<std::size_t>(source)];
          tensor.data[static_cast<std::size_t>(target)] =
              pixel * channel_value(prep.scale, k) + channel_value(prep.offset, k);
        }
      }
    }
  }
  return tensor;
}

}  // namespace anan
