// prefopt/io/detail/mapped_file.hpp — a whole file, read-only, memory-mapped (POSIX mmap).
//
// When mmap is refused (some file systems) or file_access::read is asked for, the file is read
// into memory instead; the bytes are the same either way. Failures of the operating system are prefopt::io_error
// naming the file.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "prefopt/core/error.hpp"

namespace prefopt::io {
// How a file is brought into memory: mapped (pages read on first touch) or read whole. Reading
// avoids SIGBUS if another program truncates the file while it is mapped.
enum class file_access { map, read };
} // namespace prefopt::io

namespace prefopt::io::detail {

class mapped_file {
public:
  explicit mapped_file(const std::filesystem::path& path, file_access access = file_access::map) {
    const std::string name = path.string();
    const int fd = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw io_error(name, std::string("cannot open: ") + std::strerror(errno));
    try {
      struct stat st {};
      if (::fstat(fd, &st) != 0) throw io_error(name, std::string("cannot stat: ") + std::strerror(errno));
      if (!S_ISREG(st.st_mode)) throw io_error(name, "not a regular file");
      size_ = static_cast<std::size_t>(st.st_size);
      if (size_ > 0 && access == file_access::read) {
        read_all(fd, name);
      } else if (size_ > 0) {
        void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) {
          map_ = p;
          data_ = static_cast<const std::byte*>(p);
        } else {
          read_all(fd, name);
        }
      }
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd); // a mapping stays valid after its descriptor is closed
  }

  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;
  mapped_file(mapped_file&& other) noexcept { swap(other); }
  mapped_file& operator=(mapped_file&& other) noexcept {
    if (this != &other) {
      release();
      swap(other);
    }
    return *this;
  }
  ~mapped_file() { release(); }

  [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  // True when the bytes are a mapping of the file, false when they were read into memory.
  [[nodiscard]] bool is_mapped() const noexcept { return map_ != nullptr; }

private:
  void read_all(int fd, const std::string& name) {
    copy_.resize(size_);
    std::size_t done = 0;
    while (done < size_) {
      const ::ssize_t got = ::pread(fd, copy_.data() + done, size_ - done, static_cast<off_t>(done));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) throw io_error(name, std::string("cannot read: ") + std::strerror(errno));
      if (got == 0) throw io_error(name, "file shrank while being read");
      done += static_cast<std::size_t>(got);
    }
    data_ = copy_.data();
  }
  void release() noexcept {
    if (map_ != nullptr) ::munmap(map_, size_);
    map_ = nullptr;
    data_ = nullptr;
    size_ = 0;
    copy_.clear();
  }
  void swap(mapped_file& other) noexcept {
    std::swap(map_, other.map_);
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    std::swap(copy_, other.copy_);
  }

  void* map_ = nullptr;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::vector<std::byte> copy_; // the fallback when mmap fails
};

} // namespace prefopt::io::detail
