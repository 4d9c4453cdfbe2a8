// prefopt/comm/nccl.hpp — the communicator of the CUDA backend: NCCL for the model's buffers in
// GPU memory, bootstrapped over a host communicator (comm::mpi across processes, as llm.c does;
// comm::none for one GPU).
//
//   prefopt::comm::mpi_environment env(&argc, &argv);
//   prefopt::comm::nccl<prefopt::comm::mpi> world(prefopt::comm::mpi{});   // device: rank % GPUs
// Float spans (the gradient buffer, ZeRO-1's parameter ranges and staging buffers) are device
// memory and go through NCCL on the communicator's stream. Each device collective first waits (on
// the device, an event) for the work queued so far on the compute stream it follows (the CUDA
// backend's: the trainers call follow_stream through comm::follow_backend), so it reads finished
// gradients. all_reduce_sum, reduce_scatter_sum and all_gather_in_place return once done; the
// gradient buckets' start_all_reduce_sum (comm/buckets.hpp) returns at once, and wait() blocks until
// the stream has run every collective queued so far. Reduce-scatter and all-gather take equal
// ranges (equal_ranges: train/zero.hpp pads ZeRO-1's ranges). Everything else the trainers exchange
// (per-pair log-probs, batch counts, hashes: small host vectors of double and integers) goes
// through the host communicator. Compiled when CUDA and NCCL are found (prefopt::nccl).
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "prefopt/comm/buckets.hpp"
#include "prefopt/comm/concepts.hpp"

namespace prefopt::comm {

namespace detail {
inline void nccl_check(ncclResult_t rc, const char* what) {
  if (rc != ncclSuccess) throw comm_error(std::string("NCCL: ") + what, ncclGetErrorString(rc));
}
inline void cuda_check(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess) throw comm_error(std::string("CUDA: ") + what, cudaGetErrorString(rc));
}
} // namespace detail

template <Communicator Host> class nccl {
public:
  // device < 0: rank % (number of GPUs). Every rank must construct it (a collective).
  explicit nccl(Host host, int device = -1) : host_(std::move(host)) {
    int count = 0;
    detail::cuda_check(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
    if (count == 0) throw comm_error("comm::nccl", "no CUDA device");
    device_ = device >= 0 ? device : host_.rank() % count;
    detail::cuda_check(cudaSetDevice(device_), "cudaSetDevice");
    // ncclUniqueId (128 bytes) from rank 0 to every rank, as 64-bit words
    ncclUniqueId id{};
    if (host_.rank() == 0) detail::nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    std::vector<std::uint64_t> words((sizeof id + 7) / 8, 0);
    std::memcpy(words.data(), &id, sizeof id);
    host_.broadcast(std::span<std::uint64_t>(words), 0);
    std::memcpy(&id, words.data(), sizeof id);
    ncclComm_t c = nullptr;
    detail::nccl_check(ncclCommInitRank(&c, host_.size(), id, host_.rank()), "ncclCommInitRank");
    comm_ = std::shared_ptr<ncclComm>(c, [](ncclComm_t p) { ncclCommDestroy(p); });
    cudaStream_t s = nullptr;
    detail::cuda_check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
    stream_ = std::shared_ptr<CUstream_st>(s, [](cudaStream_t p) { cudaStreamDestroy(p); });
    cudaEvent_t e = nullptr;
    detail::cuda_check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
    computed_ = std::shared_ptr<CUevent_st>(e, [](cudaEvent_t p) { cudaEventDestroy(p); });
  }
  static constexpr bool equal_ranges = true;  // NCCL's reduce-scatter and all-gather
  // The stream whose queued work every later device collective waits for (nullptr: none).
  void follow_stream(cudaStream_t compute) noexcept { compute_ = compute; }

  int rank() const { return host_.rank(); }
  int size() const { return host_.size(); }
  int device() const noexcept { return device_; }
  Host& host() noexcept { return host_; }

  // Device memory: the model's buffers.
  void all_reduce_sum(std::span<float> v) {
    if (v.empty()) return;
    after_compute();
    detail::nccl_check(ncclAllReduce(v.data(), v.data(), v.size(), ncclFloat, ncclSum, comm_.get(), stream_.get()), "ncclAllReduce");
    sync();
  }
  // A gradient bucket (comm/buckets.hpp): queued on the stream behind the compute stream's work.
  struct request {};
  request start_all_reduce_sum(std::span<float> v) {
    if (v.empty()) return {};
    after_compute();
    detail::nccl_check(ncclAllReduce(v.data(), v.data(), v.size(), ncclFloat, ncclSum, comm_.get(), stream_.get()), "ncclAllReduce");
    return {};
  }
  bool test(request&) {
    const cudaError_t rc = cudaStreamQuery(stream_.get());
    if (rc == cudaErrorNotReady) return false;
    detail::cuda_check(rc, "cudaStreamQuery");
    return true;
  }
  void wait(request&) { sync(); }
  void reduce_scatter_sum(std::span<const float> in, std::span<float> out, const std::vector<std::size_t>& counts) {
    // NCCL's reduce-scatter takes equal ranges: the parameter count must be a multiple of the ranks.
    for (auto c : counts)
      if (c != counts.front() || c != out.size())
        throw comm_error("comm::nccl: reduce_scatter_sum", "the ranges must be equal (a parameter count that is a multiple of the ranks)");
    after_compute();
    detail::nccl_check(ncclReduceScatter(in.data(), out.data(), out.size(), ncclFloat, ncclSum, comm_.get(), stream_.get()),
                       "ncclReduceScatter");
    sync();
  }
  void all_gather_in_place(std::span<float> buf, const std::vector<std::size_t>& counts) {
    if (buf.size() % counts.size() != 0)
      throw comm_error("comm::nccl: all_gather_in_place", "the parameter count must be a multiple of the rank count");
    const std::size_t n = buf.size() / counts.size();
    after_compute();
    detail::nccl_check(ncclAllGather(buf.data() + std::size_t(rank()) * n, buf.data(), n, ncclFloat, comm_.get(), stream_.get()),
                       "ncclAllGather");
    sync();
  }
  // Host memory: per-pair vectors, counts, hashes.
  void all_reduce_sum(std::span<double> v) { host_.all_reduce_sum(v); }
  void all_reduce_sum(std::span<std::int64_t> v) { host_.all_reduce_sum(v); }
  std::vector<double> all_gather(std::span<const double> mine) { return host_.all_gather(mine); }
  std::vector<double> all_gather(std::span<const double> mine, std::vector<std::size_t>& counts) {
    return host_.all_gather(mine, counts);
  }
  void gather(std::span<const float> mine, std::span<float> all, const std::vector<std::size_t>& counts, int root) {
    host_.gather(mine, all, counts, root);  // host memory (checkpoints)
  }
  void broadcast(std::span<std::uint64_t> v, int root) { host_.broadcast(v, root); }
  void broadcast(std::span<double> v, int root) { host_.broadcast(v, root); }
  void barrier() {
    sync();
    host_.barrier();
  }

private:
  void sync() { detail::cuda_check(cudaStreamSynchronize(stream_.get()), "cudaStreamSynchronize"); }
  void after_compute() {
    if (!compute_) return;
    detail::cuda_check(cudaEventRecord(computed_.get(), compute_), "cudaEventRecord");
    detail::cuda_check(cudaStreamWaitEvent(stream_.get(), computed_.get(), 0), "cudaStreamWaitEvent");
  }
  Host host_;
  int device_ = 0;
  std::shared_ptr<ncclComm> comm_;
  std::shared_ptr<CUstream_st> stream_;
  std::shared_ptr<CUevent_st> computed_;  // recorded on compute_ before each device collective
  cudaStream_t compute_ = nullptr;
};

} // namespace prefopt::comm
