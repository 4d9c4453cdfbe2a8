// prefopt/io/atomic_file.hpp — write a file so that readers see the old content or the new, never a mix.
//
//   prefopt::io::write_atomically("ckpt/model.safetensors", [&](prefopt::io::atomic_output& out) {
//     out.write(header);
//     out.write(std::as_bytes(std::span(weights)));
//   });
//
// The body writes into a temporary file in the target's directory (".<name>.tmp-<pid>-<n>"),
// which is then flushed, fsync'ed, closed and renamed over the target; the directory is fsync'ed
// so the rename survives a crash. If the body throws or any step fails, the temporary is removed
// and the target is left as it was (absent, or its old content). A replaced file keeps its
// permission bits; a new one gets 0666 minus the umask. Failures of the operating system are
// prefopt::io_error naming the target.
#pragma once

#include <cerrno>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "prefopt/core/error.hpp"

namespace prefopt::io {

// Makes renames inside `dir` durable (fsync of the directory). Some file systems refuse fsync on a
// directory: not an error.
inline void sync_directory(const std::filesystem::path& dir) {
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

// The temporary file being written by write_atomically; the body receives it.
class atomic_output {
public:
  atomic_output(const atomic_output&) = delete;
  atomic_output& operator=(const atomic_output&) = delete;
  ~atomic_output() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temporary_.c_str());
  }

  void write(std::span<const std::byte> data) {
    if (buffer_.size() + data.size() > buffer_capacity) flush_buffer();
    if (data.size() >= buffer_capacity) {
      write_fully(data);
    } else {
      buffer_.insert(buffer_.end(), data.begin(), data.end());
    }
    size_ += data.size();
  }
  void write(std::string_view text) { write(std::as_bytes(std::span(text.data(), text.size()))); }

  // Bytes written so far.
  [[nodiscard]] std::uint64_t size() const noexcept { return size_; }
  [[nodiscard]] const std::filesystem::path& temporary_path() const noexcept { return temporary_; }

private:
  template <class Body>
    requires std::invocable<Body&, atomic_output&>
  friend void write_atomically(const std::filesystem::path& target, Body&& body);

  static constexpr std::size_t buffer_capacity = std::size_t{1} << 20;

  explicit atomic_output(std::filesystem::path target) : target_(std::move(target)), where_(target_.string()) {
    if (target_.filename().empty()) throw io_error(where_, "not a file name");
    const std::filesystem::path dir = target_.has_parent_path() ? target_.parent_path() : std::filesystem::path(".");
    struct stat old {};
    const bool replacing = ::stat(target_.c_str(), &old) == 0 && S_ISREG(old.st_mode);
    auto stamp = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    for (int attempt = 0; attempt < 100; ++attempt, ++stamp) {
      std::string name = "."; // appended piecewise: GCC 12 warns falsely (-Wrestrict) on "." + std::string
      name += target_.filename().string();
      name += ".tmp-";
      name += std::to_string(::getpid());
      name += '-';
      name += std::to_string(stamp % 1000000007u);
      temporary_ = dir / name;
      fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ >= 0 || errno != EEXIST) break;
    }
    if (fd_ < 0) {
      committed_ = true; // nothing of ours to remove
      throw io_error(where_, "cannot create a temporary file in '" + dir.string() + "': " + std::strerror(errno));
    }
    if (replacing && ::fchmod(fd_, old.st_mode & 07777) != 0) fail("cannot set the permissions of the temporary file");
    buffer_.reserve(buffer_capacity);
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw io_error(where_, what + " ('" + temporary_.string() + "'): " + std::strerror(errno));
  }

  void write_fully(std::span<const std::byte> data) {
    while (!data.empty()) {
      const ::ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail("cannot write the temporary file");
      data = data.subspan(static_cast<std::size_t>(n));
    }
  }
  void flush_buffer() {
    write_fully(buffer_);
    buffer_.clear();
  }

  void commit() {
    flush_buffer();
    while (::fsync(fd_) != 0)
      if (errno != EINTR) fail("cannot fsync the temporary file");
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0 && errno != EINTR) fail("cannot close the temporary file");
    if (::rename(temporary_.c_str(), target_.c_str()) != 0)
      fail("cannot rename the temporary file over the target");
    committed_ = true;
    sync_directory(target_.has_parent_path() ? target_.parent_path() : std::filesystem::path("."));
  }

  std::filesystem::path target_;
  std::string where_;
  std::filesystem::path temporary_;
  int fd_ = -1;
  bool committed_ = false;
  std::uint64_t size_ = 0;
  std::vector<std::byte> buffer_;
};

// Runs body(out) and moves what it wrote to `target` atomically (see the top of this file).
template <class Body>
  requires std::invocable<Body&, atomic_output&>
void write_atomically(const std::filesystem::path& target, Body&& body) {
  atomic_output out(target);
  body(out);
  out.commit();
}

inline void write_atomically(const std::filesystem::path& target, std::span<const std::byte> content) {
  write_atomically(target, [&](atomic_output& out) { out.write(content); });
}
inline void write_atomically(const std::filesystem::path& target, std::string_view content) {
  write_atomically(target, [&](atomic_output& out) { out.write(content); });
}

} // namespace prefopt::io
