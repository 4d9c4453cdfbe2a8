// comm::bucket_reducer and the transformer's "these gradients are final" signal: buckets are cut
// from the end of the flat buffer and started in that order; the model announces every gradient
// exactly once (final norm first, then the layers last → first, the embeddings last), so with a
// recording communicator the first bucket starts before the last layer's backward (layer 0) has
// written anything, and every bucket has started by the time backward returns. For GPT-2 (tied
// head), Llama (untied head), checkpointed layers and LoRA adapters.
#include <doctest/doctest.h>

#include <vector>

#include "prefopt/backends/eigen.hpp"
#include "prefopt/comm/collectives.hpp"
#include "prefopt/comm/none.hpp"
#include "prefopt/models/lora.hpp"
#include "prefopt/models/transformer_io.hpp"
#include "support/data.hpp"

using namespace prefopt;
using B = backends::eigen;

namespace {
// Two "ranks" that record each started bucket and what the gradient buffer held at that moment:
// whether the watched range (layer 0's gradients) was still all zero. The sums are the identity.
struct recording : comm::none {
  struct start {
    std::size_t lo, hi;
    bool watched_untouched;
  };
  struct request {
    std::size_t index;
  };
  std::span<float> whole{};
  std::size_t watch_lo = 0, watch_hi = 0;
  std::vector<start> starts{};
  std::vector<bool> done{};
  int size() const { return 2; }
  request start_all_reduce_sum(std::span<float> v) {
    bool untouched = true;
    for (std::size_t i = watch_lo; i < watch_hi; ++i) untouched = untouched && whole[i] == 0.0f;
    starts.push_back({std::size_t(v.data() - whole.data()), std::size_t(v.data() - whole.data()) + v.size(), untouched});
    done.push_back(false);
    return {starts.size() - 1};
  }
  bool test(request&) const { return false; }
  void wait(request& r) { done[r.index] = true; }
};
static_assert(comm::AsyncAllReduce<recording>);

const std::vector<models::tokenized_pair> pairs{{{1, 2, 3, 4}, {5, 6, 7}, {8, 9}}, {{10, 11}, {12, 13, 14, 15}, {16, 17, 18}}};

// One forward and backward with the reducer listening; [watch_lo, watch_hi): layer 0's gradients.
template <class M> void check_overlap(M& m, std::size_t watch_lo, std::size_t watch_hi, std::size_t bucket) {
  m.zero_grad();
  models::sequence_logps out;
  m.forward(models::pack_pairs(pairs, false), out, {});
  recording rec;
  rec.whole = m.gradients();
  rec.watch_lo = watch_lo, rec.watch_hi = watch_hi;
  comm::bucket_reducer<recording> r(rec, m.gradients(), bucket);
  REQUIRE(r.buckets() >= 3);
  std::vector<int> seen(m.gradients().size(), 0);  // how often each value is announced
  m.set_gradients_ready([&](std::size_t at, std::size_t n) {
    for (std::size_t i = at; i < at + n; ++i) ++seen[i];
    r.ready(at, n);
  });
  const std::vector<double> d{0.7, -0.4, -0.9, 0.3};
  m.backward(std::span<const double>(d));
  m.set_gradients_ready({});
  for (std::size_t i = 0; i < seen.size(); ++i) {
    INFO("gradient value " << i);
    REQUIRE(seen[i] == 1);
  }
  // Every bucket started inside backward, in order from the buffer's end.
  CHECK(r.started() == r.buckets());
  REQUIRE(rec.starts.size() == r.buckets());
  for (std::size_t k = 0; k < rec.starts.size(); ++k) {
    CHECK(rec.starts[k].lo == r.bucket_begin(k));
    CHECK(rec.starts[k].hi == r.bucket_end(k));
  }
  CHECK(rec.starts.front().hi == m.gradients().size());
  // The overlap: the first bucket went out before layer 0's backward wrote its gradients.
  CHECK(rec.starts.front().watched_untouched);
  bool touched = false;  // ... which it did write before backward returned
  for (std::size_t i = watch_lo; i < watch_hi; ++i) touched = touched || m.gradients()[i] != 0.0f;
  CHECK(touched);
  r.finish();
  for (bool x : rec.done) CHECK(x);
}

template <class M> std::pair<std::size_t, std::size_t> layer0(M& m) {
  const auto& L = m.layout();
  return {L.layers[0].norm1_w, L.layers.size() > 1 ? L.layers[1].norm1_w : L.normf_w};
}
} // namespace

TEST_CASE("bucket_reducer: buckets cut from the end, started in order once final, the rest in finish()") {
  recording rec;
  std::vector<float> g(10, 1.0f);
  rec.whole = std::span<float>(g);
  comm::bucket_reducer<recording> r(rec, std::span<float>(g), 3);
  REQUIRE(r.buckets() == 4);  // [7, 10), [4, 7), [1, 4), [0, 1)
  CHECK(r.bucket_begin(0) == 7);
  CHECK(r.bucket_end(0) == 10);
  CHECK(r.bucket_begin(3) == 0);
  CHECK(r.bucket_end(3) == 1);
  r.ready(4, 3);  // bucket 1 is final, but bucket 0 is not: nothing may start out of order
  CHECK(r.started() == 0);
  r.ready(8, 2);
  CHECK(r.started() == 0);
  r.ready(7, 1);  // buckets 0 and 1
  CHECK(r.started() == 2);
  r.ready(0, 2);  // bucket 3 final, bucket 2 not yet
  CHECK(r.started() == 2);
  r.finish();     // the rest, in order, then every one waited for
  REQUIRE(rec.starts.size() == 4);
  CHECK(rec.starts[2].lo == 1);
  CHECK(rec.starts[3].lo == 0);
  for (bool x : rec.done) CHECK(x);
}

TEST_CASE("the transformer announces each gradient once, and the first bucket starts before layer 0's backward") {
  SUBCASE("GPT-2 (tied head: the embeddings are final last)") {
    auto m = models::from_pretrained<models::gpt2<B>>(B{}, test::data_path("models/gpt2"));
    const auto [lo, hi] = layer0(m);
    check_overlap(m, lo, hi, 1000);
    SUBCASE("checkpointed layers") {
      m.set_gradient_checkpointing(true);
      check_overlap(m, lo, hi, 1000);
    }
  }
  SUBCASE("Llama (untied head, at the buffer's end)") {
    auto m = models::from_pretrained<models::llama<B>>(B{}, test::data_path("models/llama"));
    const auto [lo, hi] = layer0(m);
    check_overlap(m, lo, hi, 1000);
  }
  SUBCASE("LoRA: the adapters of each layer") {
    using M = models::gpt2<B>;
    models::lora<M> m(models::from_pretrained<M>(B{}, test::data_path("models/gpt2")),
                      {.r = 2, .alpha = 4.0, .target_modules = {"c_attn", "c_fc"}}, 5);
    std::vector<float> w(m.parameters().size());
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = 0.01f * float(int(i % 7) - 3);  // B ≠ 0: every adapter has a gradient
    m.backend().upload(std::span<const float>(w), m.parameters());
    std::size_t lo = m.parameters().size(), hi = 0;  // layer 0's adapters
    for (const auto& a : m.adapters())
      if (a.module.find(".h.0.") != std::string::npos) lo = std::min(lo, a.a), hi = std::max(hi, a.b + std::size_t(a.out * a.rank));
    REQUIRE(lo < hi);
    check_overlap(m, lo, hi, 64);
  }
}
