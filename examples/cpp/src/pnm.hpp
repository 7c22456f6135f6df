// A minimal reader for binary PPM (P6, RGB) and PGM (P5, grey) images with 8-bit samples.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace anan {

struct Image {
  std::filesystem::path path;
  int64_t height = 0;
  int64_t width = 0;
  int64_t channels = 0;          ///< 3 for P6, 1 for P5
  std::vector<uint8_t> samples;  ///< height x width x channels, row-major, interleaved
};

/// Reads a binary P6 or P5 image with maxval 255 and sides of at most 32768 pixels. Throws
/// UserError otherwise, or when the file does not hold the pixels its header claims (checked
/// before allocating them).
Image read_pnm(const std::filesystem::path& path);

/// Whether the first bytes of a file look like a binary PPM/PGM header ("P6" or "P5").
bool has_pnm_magic(const std::string& first_bytes);

}  // namespace anan
