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
  double scale = 1.0;  ///< model value = pixel * scale + offset
  double offset = 0.0;
};

/// Preprocessing of a model: anan.layout (else guessed from the input shape), the image
/// size from the input's fixed dimensions (else anan.height/width/channels), and
/// anan.scale / anan.offset (else 1 and 0). Throws UserError for unusable metadata.
Preprocessing preprocessing_for(const TensorSpec& input,
                                const std::map<std::string, std::string>& metadata);

/// Throws a one-line UserError unless every image has the size the model needs (and,
/// where the model leaves it open, the size of the first image).
void check_images(const std::vector<Image>& images, const Preprocessing& preprocessing);

/// Stacks images into one batch: value = sample * scale + offset (in float32), in NHWC or
/// NCHW order.
Tensor images_to_tensor(const std::vector<Image>& images, const Preprocessing& preprocessing);

}  // namespace anan
