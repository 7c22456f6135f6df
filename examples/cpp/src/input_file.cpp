#include "input_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>  // SEEK_SET
#include <cstring>

#include "tensor.hpp"

#ifdef _WIN32
#include <io.h>
#else
#include <unistd.h>
#endif

namespace anan {
namespace {

#ifdef _WIN32
using StatInfo = struct _stat64;
int open_nonblocking(const std::filesystem::path& path) {
  return ::_wopen(path.c_str(), _O_RDONLY | _O_BINARY);  // no FIFOs to block on
}
int stat_fd(int fd, StatInfo* info) { return ::_fstat64(fd, info); }
bool is_regular(const StatInfo& info) { return (info.st_mode & _S_IFMT) == _S_IFREG; }
const char* kind_of(const StatInfo& info) {
  return (info.st_mode & _S_IFMT) == _S_IFDIR ? "a directory" : "a device";
}
void close_fd(int fd) { ::_close(fd); }
#else
using StatInfo = struct stat;
int open_nonblocking(const std::filesystem::path& path) {
  // O_NONBLOCK: a plain open of a FIFO waits for a writer, possibly forever. It changes
  // nothing for regular files, the only kind read after the fstat check.
  return ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
}
int stat_fd(int fd, StatInfo* info) { return ::fstat(fd, info); }
bool is_regular(const StatInfo& info) { return S_ISREG(info.st_mode); }
const char* kind_of(const StatInfo& info) {
  if (S_ISDIR(info.st_mode)) return "a directory";
  if (S_ISFIFO(info.st_mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(info.st_mode)) return "a socket";
  if (S_ISCHR(info.st_mode)) return "a character device";
  if (S_ISBLK(info.st_mode)) return "a block device";
  return "not a regular file";
}
void close_fd(int fd) { ::close(fd); }
#endif

/// Reads up to `count` bytes at `offset`; -1 on error (errno set).
long long read_chunk(int fd, uint64_t offset, char* buffer, std::size_t count) {
  // One call reads at most 1 GiB: the limit of read() on some systems is just below 2 GiB.
  const std::size_t chunk = std::min<std::size_t>(count, std::size_t{1} << 30);
#ifdef _WIN32
  if (::_lseeki64(fd, static_cast<long long>(offset), SEEK_SET) < 0) return -1;
  return ::_read(fd, buffer, static_cast<unsigned>(chunk));
#else
  return ::pread(fd, buffer, chunk, static_cast<off_t>(offset));
#endif
}

}  // namespace

InputFile::InputFile(const std::filesystem::path& path, const std::string& what)
    : path_(path), what_(what) {
  fd_ = open_nonblocking(path);
  if (fd_ < 0) {
    const int error = errno;
    if (error == ENOENT || error == ENOTDIR) throw UserError(what + " not found: " + path.string());
    throw UserError("cannot open " + what + " " + path.string() + ": " + std::strerror(error));
  }
  StatInfo info{};
  if (stat_fd(fd_, &info) != 0) {
    const int error = errno;
    close_fd(fd_);
    throw UserError("cannot read " + what + " " + path.string() + ": " + std::strerror(error));
  }
  if (!is_regular(info)) {
    close_fd(fd_);
    throw UserError(what + " " + path.string() + " is " + kind_of(info) +
                    ", not a regular file: anan_infer reads regular files only (pass the file "
                    "itself; save a stream or device to a file first)");
  }
  size_ = static_cast<uint64_t>(info.st_size);
}

InputFile::~InputFile() {
  if (fd_ >= 0) close_fd(fd_);
}

std::size_t InputFile::read_at(uint64_t offset, void* buffer, std::size_t count) const {
  char* out = static_cast<char*>(buffer);
  std::size_t done = 0;
  while (done < count) {
    const long long got = read_chunk(fd_, offset + done, out + done, count - done);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      throw UserError("cannot read " + what_ + " " + path_.string() + ": " +
                      std::strerror(errno));
    }
    if (got == 0) break;  // end of file
    done += static_cast<std::size_t>(got);
  }
  return done;
}

std::string InputFile::read_string(uint64_t offset, std::size_t count) const {
  const uint64_t available = offset < size_ ? size_ - offset : 0;
  std::string text(static_cast<std::size_t>(std::min<uint64_t>(count, available)), '\0');
  text.resize(read_at(offset, text.data(), text.size()));
  return text;
}

}  // namespace anan
