// The cuda backend under precision bf16 against the eigen backend's bf16 emulation (core/bf16.hpp):
// the conversion kernel bit for bit against the host's to_bf16 (NaN, infinities, subnormals, ties);
// gemm (cuBLASLt on CUDA_R_16BF operands, fp32 compute) and attention (kernels reading rounded
// Q, K, V) to fp32 summation-order differences, since both sides multiply the same bf16 values;
// and a few DPO steps of a tiny GPT-2 whose log-probs and losses agree. The weight copy (core/bf16.hpp,
// "The weight copy", "Stored norm outputs"): convert_to_bf16 bit for bit, gemm_bf16 with A, B or both
// as slices of device bf16 bits (aligned and not, every transpose) against gemm on the fp32
// values, and DPO steps with the copy and stored norm outputs against steps without them.
// Skipped without a GPU.
#include "cuda/support.hpp"

#include <bit>
#include <cmath>
#include <limits>
#include <map>
#include <type_traits>

#include "prefopt/core/bf16.hpp"
#include "prefopt/losses/sigmoid.hpp"
#include "prefopt/models/clone.hpp"
#include "prefopt/models/init.hpp"
#include "prefopt/optim/adamw.hpp"
#include "prefopt/train/trainer.hpp"
#include "support/attention_reference.hpp"
#include "support/tiny_transformer.hpp"

using namespace prefopt;
using namespace prefopt::test::gpu;
using backends::cuda;
using backends::eigen;

namespace {
std::span<const float> cs(const fvec& v) { return {v.data(), v.size()}; }
std::span<float> ms(fvec& v) { return {v.data(), v.size()}; }
cuda bf16_cuda() {
  cuda g;
  g.matmul_precision = precision::bf16;
  return g;
}
eigen bf16_eigen() {
  eigen e;
  e.matmul_precision = precision::bf16;
  return e;
}
} // namespace

TEST_CASE("the device's to_bf16 and round_bf16 equal the host's bit for bit") {
  const cuda g;
  std::vector<std::uint32_t> bits{0x00000000u, 0x80000000u, 0x00000001u, 0x00008000u, 0x00018000u, 0x007fffffu,
                                  0x3f808000u, 0x3f818000u, 0x7f7f7fffu, 0x7f7f8000u, 0x7f7fffffu, 0x7f800000u,
                                  0xff800000u, 0x7f800001u, 0xffc00000u, 0x7fffffffu};
  for (std::uint32_t x = 0; x < 200000u; ++x) bits.push_back(x * 21481u + (x & 1u ? 0x8000u : 0x7fffu));
  fvec x(bits.size());
  for (std::size_t i = 0; i < bits.size(); ++i) x[i] = std::bit_cast<float>(bits[i]);
  auto dx = up(g, x);
  auto d16 = g.allocate<std::uint16_t>(x.size());
  auto dr = g.allocate<float>(x.size());
  backends::cuda_detail::check(backends::cuda_kernels::to_bf16(dx.data(), d16.data(), x.size(), g.ctx().stream()), "to_bf16");
  backends::cuda_detail::check(backends::cuda_kernels::round_bf16(dx.data(), dr.data(), x.size(), g.ctx().stream()), "round_bf16");
  const auto h16 = down(g, d16);
  const auto hr = down(g, dr);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    wrong += h16[i] != to_bf16(x[i]);
    wrong += std::bit_cast<std::uint32_t>(hr[i]) != std::bit_cast<std::uint32_t>(round_bf16(x[i]));
  }
  CHECK(wrong == 0);
}

TEST_CASE("gemm under bf16 equals the eigen emulation, every transpose and beta") {
  const cuda g = bf16_cuda();
  const eigen e = bf16_eigen(), e32;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (float beta : {0.0f, 1.0f}) {
        const int m = 37, n = 21, k = 300;
        const int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
        const int lda = ac + 3, ldb = bc + 1, ldc = n + 2;
        auto a = randn(std::size_t(ar) * lda, 1), b = randn(std::size_t(br) * ldb, 2), c = randn(std::size_t(m) * ldc, 3);
        fvec plain = c;
        const gemm_args args{.trans_a = bool(ta), .trans_b = bool(tb), .m = m, .n = n, .k = k, .lda = lda, .ldb = ldb,
                             .ldc = ldc, .alpha = 1.5f, .beta = beta};
        auto da = up(g, a), db = up(g, b), dc = up(g, c);
        g.gemm(args, da.span(), db.span(), dc.span());
        e.gemm(args, cs(a), cs(b), ms(c));
        e32.gemm(args, cs(a), cs(b), ms(plain));
        CAPTURE(ta);
        CAPTURE(tb);
        CAPTURE(beta);
        const auto got = down(g, dc);
        CHECK(max_rel(got, c) < 1e-5);
        CHECK(max_rel(got, plain) > 1e-4);  // the device rounded its operands
      }
}

TEST_CASE("attention under bf16 equals the eigen emulation, forward and backward") {
  const cuda g = bf16_cuda();
  const eigen e = bf16_eigen();
  const test::packed_rows rows;
  const int T = rows.tokens(), hq = 4, hkv = 2, d = 16;
  const attention_shape sh{T, hq, hkv, d};
  const std::size_t qs = std::size_t(T) * hq * d, ks = std::size_t(T) * hkv * d, ls = attention_lse_size(std::size_t(T), hq);
  auto q = randn(qs, 50), k = randn(ks, 51), v = randn(ks, 52), dout = randn(qs, 53);
  fvec out(qs), lse(ls), dq(qs), dk(ks), dv(ks);
  const attention_layout hl{int(rows.off.size()) - 1, 70, std::span<const std::int32_t>(rows.off),
                            std::span<const std::int32_t>(rows.seg)};
  e.attention_forward(cs(q), cs(k), cs(v), hl, sh, ms(out), ms(lse));
  e.attention_backward(cs(dout), cs(q), cs(k), cs(v), cs(out), cs(lse), hl, sh, ms(dq), ms(dk), ms(dv));
  auto gq = up(g, q), gk = up(g, k), gv = up(g, v), gdo = up(g, dout), go = g.allocate<float>(qs), glse = g.allocate<float>(ls),
       gdq = g.allocate<float>(qs), gdk = g.allocate<float>(ks), gdv = g.allocate<float>(ks);
  auto goff = up(g, rows.off), gseg = up(g, rows.seg);
  const attention_layout lay{hl.rows, 70, goff.span(), gseg.span()};
  g.attention_forward(gq.span(), gk.span(), gv.span(), lay, sh, go.span(), glse.span());
  CHECK(max_rel(down(g, go), out) < 1e-5);
  CHECK(max_rel(down(g, glse), lse) < 1e-5);
  g.attention_backward(gdo.span(), gq.span(), gk.span(), gv.span(), go.span(), glse.span(), lay, sh, gdq.span(), gdk.span(),
                       gdv.span());
  CHECK(max_rel(down(g, gdq), dq) < 1e-4);
  CHECK(max_rel(down(g, gdk), dk) < 1e-4);
  CHECK(max_rel(down(g, gdv), dv) < 1e-4);
}

TEST_CASE("5 DPO steps of a tiny GPT-2 in bf16: the device's losses equal the emulation's") {
  auto losses_of = [](auto be) {
    using B = decltype(be);
    using model = models::gpt2<B>;
    using trainer = train::trainer<model, losses::sigmoid, optim::adamw, train::reference::frozen<model>>;
    model m(be, test::tiny_transformer(models::architecture::gpt2, 2));
    models::init_weights(m, 21, {.initializer_range = 0.2});
    model ref = models::clone(m);
    trainer t(m, losses::sigmoid{.beta = 0.5}, optim::adamw{.lr = 1e-2}, {&ref});
    const auto& pairs = test::tiny_pairs();
    const train::preference_batch<models::token_batch> batch{.sequences = models::pack_pairs(pairs, true),
                                                             .pairs = pairs.size()};
    std::vector<double> loss;
    for (int s = 0; s < 5; ++s) loss.push_back(t.step(batch).metrics.at("loss"));
    return loss;
  };
  const auto dev = losses_of(bf16_cuda());
  const auto emu = losses_of(bf16_eigen());
  for (std::size_t s = 0; s < dev.size(); ++s) {
    CAPTURE(s);
    // A value a summation-order difference moves across a bf16 rounding boundary changes by one
    // bf16 ulp (2^-8 relative); a few such flips in a step move the mean loss by far less than 1e-3.
    CHECK(std::abs(dev[s] - emu[s]) < 1e-3);
  }
}

TEST_CASE("bf16 operands on the device: convert_to_bf16 bit for bit, gemm_bf16 equals gemm under bf16") {
  const cuda g;
  const cuda b16 = bf16_cuda();
  const eigen e = bf16_eigen();
  const int m = 37, n = 21, k = 300;
  auto w = randn(std::size_t(n + 1) * (k + 1) + 64, 7), a = randn(std::size_t(m + 1) * (k + 1) + 64, 8);
  auto dw = up(g, w), da = up(g, a);
  auto w16 = b16.allocate<std::uint16_t>(w.size()), a16 = b16.allocate<std::uint16_t>(a.size());
  b16.convert_to_bf16(dw.span(), w16.span());
  b16.convert_to_bf16(da.span(), a16.span());
  const auto h16 = down(g, w16);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < w.size(); ++i) wrong += h16[i] != to_bf16(w[i]);
  CHECK(wrong == 0);
  // A weight copy (B) and a stored norm output (A, trans_a for GPT-2's dW, as B for Llama's) as
  // bits or fp32, at 256-, 16- and 2-byte aligned offsets, every transpose.
  for (std::size_t off : {std::size_t(0), std::size_t(8), std::size_t(3)})
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (int bits = 1; bits < 4; ++bits) {  // 1: B bits, 2: A bits, 3: both
          CAPTURE(off);
          CAPTURE(ta);
          CAPTURE(tb);
          CAPTURE(bits);
          const gemm_args args{bool(ta), bool(tb), m, n, k, ta ? m + 1 : k + 1, tb ? k + 1 : n + 1, n, 1.0f, 0.0f};
          const gemm_operand oa = bits & 2 ? gemm_operand(std::span<const std::uint16_t>(a16.span()).subspan(off))
                                           : gemm_operand(std::span<const float>(da.span()).subspan(off));
          const gemm_operand ob = bits & 1 ? gemm_operand(std::span<const std::uint16_t>(w16.span()).subspan(off))
                                           : gemm_operand(std::span<const float>(dw.span()).subspan(off));
          auto c1 = g.allocate<float>(std::size_t(m) * n), c2 = g.allocate<float>(std::size_t(m) * n);
          b16.gemm_bf16(args, oa, ob, c1.span());
          b16.gemm(args, std::span<const float>(da.span()).subspan(off), std::span<const float>(dw.span()).subspan(off), c2.span());
          fvec c(std::size_t(m) * n);
          e.gemm(args, cs(a).subspan(off), cs(w).subspan(off), ms(c));
          const auto got = down(g, c1);
          CHECK(max_rel(got, c) < 1e-5);
          if (off == 0) {
            CHECK(got == down(g, c2));  // the same operands, shape and alignment: the same plan
          }
        }
}

TEST_CASE("3 DPO steps of a tiny GPT-2 and Llama on the device: the weight copy changes nothing") {
  auto run = [](auto tag, models::architecture arch, bool copy) {
    using model = typename decltype(tag)::type;
    using trainer = train::trainer<model, losses::sigmoid, optim::adamw, train::reference::frozen<model>>;
    model m(bf16_cuda(), test::tiny_transformer(arch, 2));
    models::init_weights(m, 21, {.initializer_range = 0.2});
    m.set_weight_copy(copy);
    m.set_activation_copy(copy);
    model ref = models::clone(m);
    models::init_weights(ref, 22, {.initializer_range = 0.2});
    trainer t(m, losses::sigmoid{.beta = 0.5}, optim::adamw{.lr = 1e-2}, {&ref});
    const auto& pairs = test::tiny_pairs();
    const train::preference_batch<models::token_batch> batch{.sequences = models::pack_pairs(pairs, true), .pairs = pairs.size()};
    std::vector<double> loss;
    for (int s = 0; s < 3; ++s) loss.push_back(t.step(batch).metrics.at("loss"));
    CHECK(m.weight_copy_bytes() == (copy ? 2 * m.weight_copy_parameters() : 0));
    return loss;
  };
  auto both = [&](auto tag, models::architecture arch) {
    const auto on = run(tag, arch, true), off = run(tag, arch, false);
    for (std::size_t s = 0; s < on.size(); ++s) {
      CAPTURE(s);
      CHECK(std::abs(on[s] - off[s]) < 1e-5);  // the same bf16 products; cuBLASLt may order sums differently
    }
  };
  both(std::type_identity<models::gpt2<cuda>>{}, models::architecture::gpt2);
  both(std::type_identity<models::llama<cuda>>{}, models::architecture::llama);
}
