// Turning PPM/PGM images into the model's input tensor, as the model's metadata says.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "model.hpp"
#include "pnm.hpp"
#include "tensor.hpp"

namespace anan {

enum class Layout { NHWC, NCHW };

struct Preprocessing {
  Layout layout = Layout::NHWC;
  int64_t height = -1;  ///< -1: not fixed by the model
  int64_t width = -1;
  int64_t channels = -1;
  /// model value of channel c = pixel[c] * scale[c] + offset[c]: one value (every
  /// channel) or one per channel, in the order of the model's input channels.
  std::vector<double> scale;
  std::vector<double> offset;
  bool bgr = false;  ///< the image's channels are reordered to BGR before scaling
};

/// Scaling given on the command line (--scale, --offset), in the metadata's text form
/// ("0.0171" or "0.0171,0.0175,0.0174"); empty: not given.
struct ScalingOverride {
  std::string scale;
  std::string offset;
};

/// Preprocessing of a model: anan.layout (else guessed from the input shape), the image
/// size from the input's fixed dimensions (else anan.height/width/channels), anan.scale /
/// anan.offset (one number or one per channel; the command line's override them),
/// anan.channel_order (RGB, the default, or BGR), anan.resize (only bilinear) and
/// anan.aspect (only stretch). Throws UserError for unusable metadata, and for a model
/// that records no anan.scale when the command line gives none: its pixel scaling would
/// be a guess (anan-onnx's Python refuses such a model too).
Preprocessing preprocessing_for(const TensorSpec& input,
                                const std::map<std::string, std::string>& metadata,
                                const ScalingOverride& given = {});

/// Throws a one-line UserError unless every image has the size the model needs (and,
/// where the model leaves it open, the size of the first image).
void check_images(const std::vector<Image>& images, const Preprocessing& preprocessing);

/// Stacks images into one batch: value = sample * scale + offset (in float32), in NHWC or
/// NCHW order.
Tensor images_to_tensor(const std::vector<Image>& images, const Preprocessing& preprocessing);

}  // namespace anan
