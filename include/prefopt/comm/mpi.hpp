// prefopt/comm/mpi.hpp — the communicator over MPI (Open MPI on Debian), for the CPU backends.
//
//   prefopt::comm::mpi_environment env(argc, argv);   // once per process, before any comm::mpi
//   prefopt::comm::mpi world;                           // MPI_COMM_WORLD: rank(), size()
// Launched with `mpirun -np N program ...`. Link prefopt::mpi (CMake option PREFOPT_ENABLE_MPI).
// MPI's C API is used directly (the C++ bindings left the standard in MPI-3); each call's error
// code becomes a comm_error naming the operation. The buffers are host memory: the GPU backend
// communicates through comm::nccl instead.
//
// When a rank dies, Open MPI's mpirun ends every other rank of the job (and reports the dead
// one) as soon as it sees the process exit; no rank waits forever in a collective. See
// docs/training.md, "More than one process".
#pragma once

#ifndef OMPI_SKIP_MPICXX  // the C API only, also when compiled without prefopt::mpi's definitions
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "prefopt/comm/buckets.hpp"
#include "prefopt/comm/concepts.hpp"

namespace prefopt::comm {

namespace detail {
inline void mpi_check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int n = 0;
  MPI_Error_string(rc, text, &n);
  throw comm_error(std::string("MPI: ") + what, std::string(text, std::size_t(std::max(n, 0))));
}
template <class T> MPI_Datatype mpi_type();
template <> inline MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <> inline MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }
template <> inline MPI_Datatype mpi_type<std::int64_t>() { return MPI_INT64_T; }
template <> inline MPI_Datatype mpi_type<std::uint64_t>() { return MPI_UINT64_T; }
} // namespace detail

// Initializes MPI (funneled threads: OpenMP regions never call MPI) unless the program already
// did, and finalizes it on destruction when it initialized it. Errors on MPI_COMM_WORLD return
// codes (turned into comm_error) instead of aborting.
class mpi_environment {
public:
  mpi_environment() : mpi_environment(nullptr, nullptr) {}
  mpi_environment(int* argc, char*** argv) {
    int done = 0;
    MPI_Initialized(&done);
    if (!done) {
      int provided = 0;
      detail::mpi_check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      owner_ = true;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
  mpi_environment(const mpi_environment&) = delete;
  mpi_environment& operator=(const mpi_environment&) = delete;
  ~mpi_environment() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owner_ && !finalized) MPI_Finalize();
  }
  // Whether this process was started by an MPI launcher (mpirun, srun with PMI/PMIx).
  static bool launched() {
    for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
      if (std::getenv(v)) return true;
    return false;
  }

private:
  bool owner_ = false;
};

// A handle on an MPI communicator (not owned; MPI_COMM_WORLD by default). Cheap to copy.
class mpi {
public:
  explicit mpi(MPI_Comm c = MPI_COMM_WORLD) : comm_(c) {
    int done = 0;
    MPI_Initialized(&done);
    if (!done) throw comm_error("comm::mpi", "MPI is not initialized: create a comm::mpi_environment first");
    detail::mpi_check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    detail::mpi_check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  }
  int rank() const noexcept { return rank_; }
  int size() const noexcept { return size_; }
  MPI_Comm native() const noexcept { return comm_; }

  void all_reduce_sum(std::span<float> v) const { reduce(v); }
  void all_reduce_sum(std::span<double> v) const { reduce(v); }
  void all_reduce_sum(std::span<std::int64_t> v) const { reduce(v); }
  // The non-blocking all-reduce of a gradient bucket (comm/buckets.hpp), MPI_Iallreduce in place;
  // at most INT_MAX values. Every rank must start its buckets in the same order.
  using request = MPI_Request;
  request start_all_reduce_sum(std::span<float> v) const {
    if (v.size() > std::size_t(INT_MAX)) throw comm_error("comm::mpi: start_all_reduce_sum", "more than INT_MAX values");
    MPI_Request r = MPI_REQUEST_NULL;
    detail::mpi_check(MPI_Iallreduce(MPI_IN_PLACE, v.data(), int(v.size()), MPI_FLOAT, MPI_SUM, comm_, &r), "MPI_Iallreduce");
    return r;
  }
  bool test(request& r) const {
    int done = 0;
    detail::mpi_check(MPI_Test(&r, &done, MPI_STATUS_IGNORE), "MPI_Test");
    return done != 0;
  }
  void wait(request& r) const { detail::mpi_check(MPI_Wait(&r, MPI_STATUS_IGNORE), "MPI_Wait"); }

  std::vector<double> all_gather(std::span<const double> mine) const {
    std::vector<std::size_t> counts;
    return all_gather(mine, counts);
  }
  std::vector<double> all_gather(std::span<const double> mine, std::vector<std::size_t>& counts) const {
    std::uint64_t n = mine.size();
    std::vector<std::uint64_t> all(std::size_t(size_), 0);
    detail::mpi_check(MPI_Allgather(&n, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, comm_), "MPI_Allgather (lengths)");
    std::vector<int> cnt(all.size()), displ(all.size());
    std::uint64_t total = 0;
    counts.assign(all.size(), 0);
    for (std::size_t r = 0; r < all.size(); ++r) {
      if (total + all[r] > std::uint64_t(INT_MAX))
        throw comm_error("comm::mpi: all_gather", "more than INT_MAX values in all");
      counts[r] = std::size_t(all[r]);
      cnt[r] = int(all[r]);
      displ[r] = int(total);
      total += all[r];
    }
    std::vector<double> out(static_cast<std::size_t>(total));
    detail::mpi_check(MPI_Allgatherv(mine.data(), int(mine.size()), MPI_DOUBLE, out.data(), cnt.data(), displ.data(),
                                     MPI_DOUBLE, comm_),
                      "MPI_Allgatherv");
    return out;
  }
  void reduce_scatter_sum(std::span<const float> in, std::span<float> out, const std::vector<std::size_t>& counts) const {
    const std::vector<int> c = int_counts(counts, in.size());
    detail::mpi_check(MPI_Reduce_scatter(in.data(), out.data(), c.data(), MPI_FLOAT, MPI_SUM, comm_), "MPI_Reduce_scatter");
  }
  void all_gather_in_place(std::span<float> buf, const std::vector<std::size_t>& counts) const {
    const std::vector<int> c = int_counts(counts, buf.size());
    std::vector<int> displ(c.size(), 0);
    for (std::size_t r = 1; r < c.size(); ++r) displ[r] = displ[r - 1] + c[r - 1];
    detail::mpi_check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf.data(), c.data(), displ.data(), MPI_FLOAT, comm_),
                      "MPI_Allgatherv (in place)");
  }
  void gather(std::span<const float> mine, std::span<float> all, const std::vector<std::size_t>& counts, int root) const {
    std::size_t total = 0;
    for (auto c : counts) total += c;
    const std::vector<int> c = int_counts(counts, total);
    std::vector<int> displ(c.size(), 0);
    for (std::size_t r = 1; r < c.size(); ++r) displ[r] = displ[r - 1] + c[r - 1];
    if (rank_ == root && all.size() != total) throw comm_error("comm::mpi: gather", "the root's buffer must hold every range");
    detail::mpi_check(MPI_Gatherv(mine.data(), int(mine.size()), MPI_FLOAT, all.data(), c.data(), displ.data(), MPI_FLOAT, root, comm_),
                      "MPI_Gatherv");
  }
  void broadcast(std::span<std::uint64_t> v, int root) const { bcast(v, root); }
  void broadcast(std::span<double> v, int root) const { bcast(v, root); }
  void barrier() const { detail::mpi_check(MPI_Barrier(comm_), "MPI_Barrier"); }

private:
  // In pieces of at most 2^26 values (MPI counts are int).
  static constexpr std::size_t piece = std::size_t(1) << 26;
  template <class T> void reduce(std::span<T> v) const {
    for (std::size_t i = 0; i < v.size(); i += piece) {
      const int n = int(std::min(piece, v.size() - i));
      detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, v.data() + i, n, detail::mpi_type<T>(), MPI_SUM, comm_), "MPI_Allreduce");
    }
  }
  std::vector<int> int_counts(const std::vector<std::size_t>& counts, std::size_t total) const {
    std::size_t sum = 0;
    for (auto c : counts) sum += c;
    if (counts.size() != std::size_t(size_) || sum != total || total > std::size_t(INT_MAX))
      throw comm_error("comm::mpi: range counts", "one count per rank, summing to the buffer's size (at most INT_MAX)");
    return {counts.begin(), counts.end()};
  }
  template <class T> void bcast(std::span<T> v, int root) const {
    for (std::size_t i = 0; i < v.size(); i += piece) {
      const int n = int(std::min(piece, v.size() - i));
      detail::mpi_check(MPI_Bcast(v.data() + i, n, detail::mpi_type<T>(), root, comm_), "MPI_Bcast");
    }
  }
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

static_assert(Communicator<mpi>);
static_assert(AsyncAllReduce<mpi>);

} // namespace prefopt::comm
