// A minimal reader for NumPy .npy files holding a float32 array.
#pragma once

#include <filesystem>

#include "tensor.hpp"

namespace anan {

/// Reads a .npy file (format version 1, 2 or 3) holding a little-endian float32 ('<f4'),
/// C-ordered array. Throws UserError for anything else (not a regular file, other dtypes,
/// Fortran order, a malformed or oversized header, a shape whose data the file does not
/// hold) with a message naming the file and the fix. The header is validated against the
/// file's size before anything is allocated, so memory stays bounded by the file.
Tensor read_npy(const std::filesystem::path& path);

/// Whether the first bytes of a file are the .npy magic string "\x93NUMPY".
bool has_npy_magic(const std::string& first_bytes);

}  // namespace anan
