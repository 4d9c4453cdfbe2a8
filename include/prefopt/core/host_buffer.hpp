// prefopt/core/host_buffer.hpp — owning, 64-byte aligned host memory (the CPU backends' buffer).
#pragma once

#include <cstddef>
#include <cstring>
#include <new>
#include <span>
#include <type_traits>
#include <utility>

namespace prefopt {

template <class T> class host_buffer {
  static_assert(std::is_trivially_copyable_v<T>, "host_buffer holds trivially copyable elements");

public:
  static constexpr std::size_t alignment = 64;

  host_buffer() = default;
  explicit host_buffer(std::size_t n) : size_(n) {
    if (n) data_ = static_cast<T*>(::operator new[](n * sizeof(T), std::align_val_t{alignment}));
  }
  host_buffer(std::size_t n, T value) : host_buffer(n) {
    for (std::size_t i = 0; i < n; ++i) data_[i] = value;
  }
  host_buffer(const host_buffer&) = delete;
  host_buffer& operator=(const host_buffer&) = delete;
  host_buffer(host_buffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  host_buffer& operator=(host_buffer&& o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  ~host_buffer() { release(); }

  [[nodiscard]] T* data() noexcept { return data_; }
  [[nodiscard]] const T* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::span<T> span() noexcept { return {data_, size_}; }
  [[nodiscard]] std::span<const T> span() const noexcept { return {data_, size_}; }
  T& operator[](std::size_t i) noexcept { return data_[i]; }
  const T& operator[](std::size_t i) const noexcept { return data_[i]; }

private:
  void release() noexcept {
    if (data_) ::operator delete[](data_, std::align_val_t{alignment});
    data_ = nullptr;
    size_ = 0;
  }
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

} // namespace prefopt
