// Opening the files anan_infer reads (model, .npy, images): regular files only, never blocking.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace anan {

/// A regular file opened for reading, with its size.
///
/// The constructor refuses (UserError) a missing path, a directory, a FIFO, a socket or a
/// device. It never blocks: it opens without waiting for a FIFO's writer and then checks the
/// opened descriptor, so a path swapped between a check and the open cannot slip through.
class InputFile {
 public:
  /// `what` names the file in messages, e.g. "model file" or "input file".
  InputFile(const std::filesystem::path& path, const std::string& what);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  /// Size in bytes when opened.
  uint64_t size() const { return size_; }

  /// Reads up to `count` bytes starting at `offset`; fewer only at the end of the file.
  std::size_t read_at(uint64_t offset, void* buffer, std::size_t count) const;
  /// Up to `count` bytes starting at `offset`, as a string (shorter at the end of the file).
  std::string read_string(uint64_t offset, std::size_t count) const;

 private:
  std::filesystem::path path_;
  std::string what_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace anan
