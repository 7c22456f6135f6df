// Command-line options of anan_infer.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "model.hpp"

namespace anan {

struct Options {
  std::filesystem::path model;
  std::vector<std::filesystem::path> inputs;  ///< one .npy file, or PPM/PGM images
  Provider provider = Provider::Cpu;
  std::string output;          ///< model output to print; empty: the first one
  std::string scale;           ///< --scale: overrides anan.scale for images; empty: not given
  std::string offset;          ///< --offset: overrides anan.offset for images
  bool json = false;           ///< print a JSON array of arrays
  bool metadata_only = false;  ///< print the anan.* metadata to stdout and stop
  bool quiet = false;          ///< no metadata block and notes on stderr
  bool help = false;
  bool version = false;
};

/// Parses argv; throws UserError for unknown options or missing arguments.
Options parse_args(int argc, const char* const argv[]);

/// The --help text.
std::string usage_text();

}  // namespace anan
