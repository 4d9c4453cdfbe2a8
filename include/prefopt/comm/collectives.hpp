// prefopt/comm/collectives.hpp — what the trainers build from a communicator's operations: the
// gradient all-reduce in buckets and the check that every rank holds the same thing.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "prefopt/comm/buckets.hpp"
#include "prefopt/comm/concepts.hpp"

namespace prefopt::comm {

// Sums the flat gradient buffer over the ranks after backward, `bucket` values per collective:
// the buckets of comm::bucket_reducer (buckets.hpp), all started at once, then waited for. The
// trainers use bucket_reducer directly to start them during backward. Nothing is done in one process.
template <Communicator C>
void all_reduce_gradients(C& c, std::span<float> g, std::size_t bucket = std::size_t(1) << 22) {
  if (c.size() == 1) return;
  bucket_reducer<C> r(c, g, bucket);
  r.finish();
}

// A cheap 64-bit hash of a buffer (FNV-1a over 8-byte words), used to compare weights, configs
// and data across ranks. Not cryptographic.
inline std::uint64_t hash_bytes(const void* data, std::size_t n, std::uint64_t h = 0xcbf29ce484222325ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
  }
  for (; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return (h ^ n) * 0x100000001b3ull;
}
template <class T> std::uint64_t hash_values(std::span<const T> v) { return hash_bytes(v.data(), v.size_bytes()); }

// Throws comm_error (where = `what`) on every rank when some rank's `h` differs from rank 0's,
// naming the ranks that differ. Every rank must call it (it is a collective).
template <Communicator C> void check_same(C& c, std::uint64_t h, const std::string& what) {
  if (c.size() == 1) return;
  std::uint64_t root = h;
  c.broadcast(std::span<std::uint64_t>(&root, 1), 0);
  std::vector<std::int64_t> differs(std::size_t(c.size()), 0);
  differs[std::size_t(c.rank())] = root != h ? 1 : 0;
  c.all_reduce_sum(std::span<std::int64_t>(differs));
  std::string ranks;
  for (std::size_t r = 0; r < differs.size(); ++r)
    if (differs[r]) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
  if (!ranks.empty()) throw comm_error(what, "differs between ranks: rank(s) " + ranks + " disagree with rank 0");
}

} // namespace prefopt::comm
