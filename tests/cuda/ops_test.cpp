// The cuda backend against the eigen backend, op by op, on the same random inputs: every op of
// core/backend.hpp and core/transformer_ops.hpp, odd sizes, strides, transposes, GQA, packed
// attention rows with shared prefixes and padding, index errors. Runs only where a GPU is visible.
#include "cuda/support.hpp"

#include "prefopt/losses.hpp"
#include "support/attention_reference.hpp"

using namespace prefopt;
using namespace prefopt::test::gpu;
using backends::cuda;
using backends::eigen;

namespace {
std::span<const float> cs(const fvec& v) { return {v.data(), v.size()}; }
std::span<float> ms(fvec& v) { return {v.data(), v.size()}; }
std::span<const std::int32_t> ci(const ivec& v) { return {v.data(), v.size()}; }
} // namespace

TEST_CASE("gemm: all transposes, strides, beta (NaN in C with beta = 0), k = 0") {
  cuda g;
  eigen e;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (float beta : {0.0f, 1.0f, -0.5f})
        for (int k : {0, 9, 300}) {
          const int m = 37, n = 21;
          const int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
          const int lda = ac + 3, ldb = bc + 1, ldc = n + 2;
          auto a = randn(std::size_t(std::max(ar, 1)) * lda, 1), b = randn(std::size_t(std::max(br, 1)) * ldb, 2);
          auto c = randn(std::size_t(m) * ldc, 3);
          if (beta == 0.0f) c[0] = NAN;
          const gemm_args args{.trans_a = bool(ta), .trans_b = bool(tb), .m = m, .n = n, .k = k, .lda = lda, .ldb = ldb,
                               .ldc = ldc, .alpha = 1.5f, .beta = beta};
          auto da = up(g, a), db = up(g, b), dc = up(g, c);
          g.gemm(args, da.span(), db.span(), dc.span());
          e.gemm(args, cs(a), cs(b), ms(c));
          CAPTURE(ta);
          CAPTURE(tb);
          CAPTURE(beta);
          CAPTURE(k);
          CHECK(max_rel(down(g, dc), c) < 1e-5);
        }
}

TEST_CASE("gemm on sub-spans of odd alignment (the LM head's chunks, LoRA slices)") {
  cuda g;
  eigen e;
  const int m = 5, n = 33, k = 17;
  auto a = randn(std::size_t(m) * k + 1, 4), b = randn(std::size_t(n) * k + 3, 5);
  fvec c(std::size_t(m) * n + 1, 0.0f);
  auto da = up(g, a), db = up(g, b), dc = up(g, c);
  const gemm_args args{.trans_b = true, .m = m, .n = n, .k = k, .lda = k, .ldb = k, .ldc = n};
  g.gemm(args, da.span().subspan(1), db.span().subspan(3), dc.span().subspan(1));
  e.gemm(args, cs(a).subspan(1), cs(b).subspan(3), ms(c).subspan(1));
  CHECK(max_rel(down(g, dc), c) < 1e-5);
}

TEST_CASE("axpy, scale, dot, sum_squares, fill, copy") {
  cuda g;
  eigen e;
  auto x = randn(100003, 6), y = randn(100003, 7);
  auto dx = up(g, x), dy = up(g, y);
  CHECK(g.dot(dx.span(), dy.span()) == doctest::Approx(e.dot(cs(x), cs(y))).epsilon(1e-12));
  CHECK(g.sum_squares(dx.span()) == doctest::Approx(e.sum_squares(cs(x))).epsilon(1e-12));
  g.axpy(0.25f, dx.span(), dy.span());
  e.axpy(0.25f, cs(x), ms(y));
  g.scale(dy.span(), -2.0f);
  e.scale(ms(y), -2.0f);
  CHECK(max_rel(down(g, dy), y) == 0.0);
  g.copy(std::span<const float>(dy.span()), dx.span());
  CHECK(down(g, dx) == y);
  g.fill(dx.span(), 3.5f);
  CHECK(down(g, dx) == fvec(x.size(), 3.5f));
  CHECK(g.sum_squares(dx.span().first(0)) == 0.0);
}

TEST_CASE("log_softmax_rows and backward; gather and scatter_add with index checks") {
  cuda g;
  eigen e;
  const int rows = 13, cols = 1037;
  auto x = randn(std::size_t(rows) * cols, 8, 4.0f), dy = randn(x.size(), 9);
  x[3] = 80.0f;
  fvec lp(x.size()), dx(x.size());
  auto gx = up(g, x), gdy = up(g, dy), glp = up(g, lp), gdx = up(g, dx);
  g.log_softmax_rows(rows, cols, gx.span(), glp.span());
  g.log_softmax_rows_backward(rows, cols, glp.span(), gdy.span(), gdx.span());
  e.log_softmax_rows(rows, cols, cs(x), ms(lp));
  e.log_softmax_rows_backward(rows, cols, cs(lp), cs(dy), ms(dx));
  CHECK(max_rel(down(g, glp), lp) < 1e-6);
  CHECK(max_rel(down(g, gdx), dx) < 1e-6);

  fvec src{1, 2, 3, 4, 5};
  ivec idx{4, 0, 4, 2};
  auto gs = up(g, src), gout = g.allocate<float>(4), acc = g.allocate<float>(5);
  auto gi = up(g, idx);
  g.gather(gs.span(), gi.span(), gout.span());
  CHECK(down(g, gout) == fvec{5, 1, 5, 3});
  g.scatter_add(gout.span(), gi.span(), acc.span());
  CHECK(down(g, acc) == fvec{1, 0, 3, 0, 10});
  auto bad = up(g, ivec{0, 5});
  CHECK_THROWS_WITH_AS(g.gather(gs.span(), bad.span(), gout.span().first(2)), doctest::Contains("element 1"), shape_error);
}

TEST_CASE("adamw_step and sgd_step equal the CPU update bit for bit") {
  cuda g;
  eigen e;
  auto p = randn(70001, 10), gr = randn(p.size(), 11), m = randn(p.size(), 12, 0.1f), v = randn(p.size(), 13, 0.1f);
  for (auto& z : v) z = std::abs(z);
  const adamw_args a{.lr = 0.01f, .beta1 = 0.8f, .beta2 = 0.99f, .eps = 1e-6f, .weight_decay = 0.1f,
                     .bias_correction1 = 0.36f, .bias_correction2 = 0.0199f};
  auto gp = up(g, p), gg = up(g, gr), gm = up(g, m), gv = up(g, v);
  g.adamw_step(gp.span(), gg.span(), gm.span(), gv.span(), a);
  e.adamw_step(ms(p), cs(gr), ms(m), ms(v), a);
  CHECK(max_rel(down(g, gp), p) < 1e-6);
  CHECK(max_rel(down(g, gm), m) < 1e-6);
  CHECK(max_rel(down(g, gv), v) < 1e-6);
  const sgd_args s{.lr = 0.1f, .momentum = 0.9f, .dampening = 0.1f, .weight_decay = 0.01f, .first_step = false};
  auto buf = randn(p.size(), 14);
  auto gb = up(g, buf);
  g.sgd_step(gp.span(), gg.span(), gb.span(), s);
  e.sgd_step(ms(p), cs(gr), ms(buf), s);
  CHECK(max_rel(down(g, gp), p) < 1e-6);
}

TEST_CASE("map_pairs runs the loss code on the device") {
  cuda g;
  pair_batch<double> b{.policy_chosen = {-3, -5, -2.5}, .policy_rejected = {-4, -4.5, -7},
                       .reference_chosen = {-3.2, -5.5, -2}, .reference_rejected = {-3.9, -4, -6},
                       .chosen_tokens = {3, 5, 2}, .rejected_tokens = {4, 4, 7}};
  auto check = [&](const auto& loss) {
    const loss_result<double> r = evaluate(loss, b);
    auto d = up(g, std::vector<double>{-3, -5, -2.5, -4, -4.5, -7, -3.2, -5.5, -2, -3.9, -4, -6});
    auto t = up(g, ivec{3, 5, 2, 4, 4, 7});
    auto o = g.allocate<double>(9);
    pair_view<double> v;
    v.n = 3;
    v.pc = d.data(), v.pr = d.data() + 3, v.rc = d.data() + 6, v.rr = d.data() + 9;
    v.nc = t.data(), v.nr = t.data() + 3;
    v.batch = context_of(b);
    v.per_pair = o.data(), v.d_chosen = o.data() + 3, v.d_rejected = o.data() + 6;
    g.map_pairs(loss, v);
    const auto h = down(g, o);
    for (int i = 0; i < 3; ++i) {
      CHECK(h[std::size_t(i)] == doctest::Approx(r.per_pair[std::size_t(i)]).epsilon(1e-12));
      CHECK(h[3 + std::size_t(i)] / 3.0 == doctest::Approx(r.d_policy_chosen[std::size_t(i)]).epsilon(1e-12));
      CHECK(h[6 + std::size_t(i)] / 3.0 == doctest::Approx(r.d_policy_rejected[std::size_t(i)]).epsilon(1e-12));
    }
  };
  check(losses::sigmoid{.beta = 0.3});
  check(losses::ipo{});
  check(losses::orpo{});
  check(losses::robust{.label_smoothing = 0.1});
}

TEST_CASE("embedding, bias, residual add, GELU, SwiGLU, dropout") {
  cuda g;
  eigen e;
  const int C = 300, V = 50, T = 77;
  ivec ids(T);
  for (int t = 0; t < T; ++t) ids[std::size_t(t)] = (t * 7) % V;  // repeats: order of the adds matters
  auto table = randn(std::size_t(V) * C, 20), dout = randn(std::size_t(T) * C, 21), bias = randn(C, 22);
  fvec out(std::size_t(T) * C), dtable(table.size(), 0.0f), dbias(C, 0.5f);
  auto gi = up(g, ids);
  auto gt = up(g, table), go = up(g, out), gd = up(g, dout), gdt = up(g, dtable), gb = up(g, bias), gdb = up(g, dbias);
  g.embedding_forward(gi.span(), gt.span(), C, go.span());
  e.embedding_forward(ci(ids), cs(table), C, ms(out));
  CHECK(down(g, go) == out);
  g.embedding_backward(gi.span(), gd.span(), C, gdt.span());
  e.embedding_backward(ci(ids), cs(dout), C, ms(dtable));
  CHECK(down(g, gdt) == dtable);
  g.bias_forward(gb.span(), C, go.span());
  e.bias_forward(cs(bias), C, ms(out));
  CHECK(down(g, go) == out);
  g.bias_backward(gd.span(), C, gdb.span());
  e.bias_backward(cs(dout), C, ms(dbias));
  CHECK(max_rel(down(g, gdb), dbias) < 1e-6);
  g.add_inplace(gd.span(), go.span());
  e.add_inplace(cs(dout), ms(out));
  CHECK(down(g, go) == out);
  auto bad = up(g, ivec{1, V});
  CHECK_THROWS_WITH_AS(g.embedding_forward(bad.span(), gt.span(), C, go.span()), doctest::Contains("element 1"), shape_error);

  auto x = randn(50001, 23, 3.0f), up_ = randn(x.size(), 24), dy = randn(x.size(), 25);
  fvec y(x.size()), dx(x.size()), d2(x.size());
  auto gx = up(g, x), gu = up(g, up_), gdy = up(g, dy), gy = up(g, y), gdx = up(g, dx), gd2 = up(g, d2);
  g.gelu_forward(gx.span(), gy.span());
  e.gelu_forward(cs(x), ms(y));
  CHECK(max_rel(down(g, gy), y) < 1e-6);
  g.gelu_backward(gx.span(), gdy.span(), gdx.span());
  e.gelu_backward(cs(x), cs(dy), ms(dx));
  CHECK(max_rel(down(g, gdx), dx) < 1e-6);
  g.swiglu_forward(gx.span(), gu.span(), gy.span());
  e.swiglu_forward(cs(x), cs(up_), ms(y));
  CHECK(max_rel(down(g, gy), y) < 1e-6);
  g.swiglu_backward(gx.span(), gu.span(), gdy.span(), gdx.span(), gd2.span());
  e.swiglu_backward(cs(x), cs(up_), cs(dy), ms(dx), ms(d2));
  CHECK(max_rel(down(g, gdx), dx) < 1e-6);
  CHECK(max_rel(down(g, gd2), d2) < 1e-6);
  g.dropout(gx.span(), gy.span(), 0.3f, 1234);
  e.dropout(cs(x), ms(y), 0.3f, 1234);
  CHECK(down(g, gy) == y);  // the same counter-based mask
}

TEST_CASE("layernorm and rmsnorm, forward and backward (accumulating)") {
  cuda g;
  eigen e;
  for (int C : {7, 768, 1100}) {
    const int T = 45;
    auto x = randn(std::size_t(T) * C, 30, 2.0f), w = randn(C, 31), b = randn(C, 32), dout = randn(x.size(), 33);
    for (auto& z : x) z += 3.0f;  // a mean far from 0
    fvec out(x.size()), mean(T), rstd(T), dx = randn(x.size(), 34), dw = randn(C, 35), db = randn(C, 36);
    auto gx = up(g, x), gw = up(g, w), gb = up(g, b), gdo = up(g, dout), go = up(g, out), gm = up(g, mean),
         gr = up(g, rstd), gdx = up(g, dx), gdw = up(g, dw), gdb = up(g, db);
    g.layernorm_forward(gx.span(), gw.span(), gb.span(), C, 1e-5f, go.span(), gm.span(), gr.span());
    e.layernorm_forward(cs(x), cs(w), cs(b), C, 1e-5f, ms(out), ms(mean), ms(rstd));
    CAPTURE(C);
    CHECK(max_rel(down(g, go), out) < 1e-5);
    CHECK(max_rel(down(g, gm), mean) < 1e-6);
    CHECK(max_rel(down(g, gr), rstd) < 1e-6);
    g.layernorm_backward(gdo.span(), gx.span(), gw.span(), gm.span(), gr.span(), C, gdx.span(), gdw.span(), gdb.span());
    e.layernorm_backward(cs(dout), cs(x), cs(w), cs(mean), cs(rstd), C, ms(dx), ms(dw), ms(db));
    CHECK(max_rel(down(g, gdx), dx) < 1e-5);
    CHECK(max_rel(down(g, gdw), dw) < 1e-5);
    CHECK(max_rel(down(g, gdb), db) < 1e-5);
    g.rmsnorm_forward(gx.span(), gw.span(), C, 1e-6f, go.span(), gr.span());
    e.rmsnorm_forward(cs(x), cs(w), C, 1e-6f, ms(out), ms(rstd));
    CHECK(max_rel(down(g, go), out) < 1e-5);
    CHECK(max_rel(down(g, gr), rstd) < 1e-6);
    g.rmsnorm_backward(gdo.span(), gx.span(), gw.span(), gr.span(), C, gdx.span(), gdw.span());
    e.rmsnorm_backward(cs(dout), cs(x), cs(w), cs(rstd), C, ms(dx), ms(dw));
    CHECK(max_rel(down(g, gdx), dx) < 1e-5);
    CHECK(max_rel(down(g, gdw), dw) < 1e-5);
  }
}

TEST_CASE("rope forward and backward") {
  cuda g;
  eigen e;
  const int T = 40, H = 3, D = 64;
  ivec pos(T);
  for (int t = 0; t < T; ++t) pos[std::size_t(t)] = t * 97;  // up to ~3800: large angles
  const auto inv = rope_inv_freq(D, 500000.0f);
  auto x = randn(std::size_t(T) * H * D, 40);
  auto gx = up(g, x), ginv = up(g, inv);
  auto gp = up(g, pos);
  g.rope_forward(gx.span(), gp.span(), H, D, ginv.span());
  e.rope_forward(ms(x), ci(pos), H, D, std::span<const float>(inv));
  CHECK(max_rel(down(g, gx), x) < 1e-6);
  g.rope_backward(gx.span(), gp.span(), H, D, ginv.span());
  e.rope_backward(ms(x), ci(pos), H, D, std::span<const float>(inv));
  CHECK(max_rel(down(g, gx), x) < 1e-6);
}

TEST_CASE("lm_head_stats (all statistics) and lm_head_backward in place") {
  cuda g;
  eigen e;
  const int rows = 9, V = 5003;
  auto z = randn(std::size_t(rows) * V, 60, 3.0f), dlogp = randn(rows, 61);
  z[17] = 60.0f;
  z[std::size_t(V) + 4] = -INFINITY;  // a masked vocabulary entry: p = 0
  const ivec targets{0, 3, -1, 5002, 17, 3, 3, -100, 2500};
  fvec lse(rows), logp(rows), lss(rows), ent(rows), mean(rows), top(rows), dz(z.size());
  auto gt = up(g, targets);
  auto gz = up(g, z), gl = up(g, lse), glp = up(g, logp), gls = up(g, lss), ge = up(g, ent),
       gm = up(g, mean), gtop = up(g, top), gd = up(g, dlogp);
  g.lm_head_stats(gz.span(), gt.span(), rows, V, {gl.span(), glp.span(), gls.span(), ge.span(), gm.span(), gtop.span()});
  e.lm_head_stats(cs(z), ci(targets), rows, V, {ms(lse), ms(logp), ms(lss), ms(ent), ms(mean), ms(top)});
  CHECK(max_rel(down(g, gl), lse) < 1e-6);
  CHECK(max_rel(down(g, glp), logp) < 1e-6);
  CHECK(max_rel(down(g, gls), lss) < 1e-5);
  CHECK(max_rel(down(g, ge), ent) < 1e-5);
  CHECK(max_rel(down(g, gm), mean) < 1e-6);
  CHECK(down(g, gtop) == top);  // the first index of the maximum, as the eigen backend's
  g.lm_head_backward(gz.span(), gt.span(), gl.span(), gd.span(), rows, V, gz.span());  // in place, as models/lm_head.hpp
  e.lm_head_backward(cs(z), ci(targets), cs(lse), cs(dlogp), rows, V, ms(dz));
  CHECK(max_rel(down(g, gz), dz) < 1e-6);
  auto bad = up(g, ivec{0, V, 1, 2, 3, 4, 5, 6, 7});
  CHECK_THROWS_WITH_AS(g.lm_head_stats(gz.span(), bad.span(), rows, V, {gl.span(), glp.span(), {}, {}, {}, {}}),
                       doctest::Contains("element 1"), shape_error);
}

TEST_CASE("a training step's buffers come from the pool: sizes are served again without growth") {
  cuda g;
  cudaMemPool_t pool = nullptr;
  REQUIRE(cudaDeviceGetDefaultMemPool(&pool, 0) == cudaSuccess);
  auto reserved = [&] {
    g.synchronize();
    std::uint64_t r = 0;
    REQUIRE(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &r) == cudaSuccess);
    return r;
  };
  auto step = [&] {
    auto a = g.allocate<float>(1 << 20), b = g.allocate<float>(3 << 18);
    g.fill(a.span(), 1.0f);
    CHECK(g.sum_squares(a.span()) == doctest::Approx(double(1 << 20)));
  };
  step();
  const auto after_first = reserved();
  for (int i = 0; i < 5; ++i) step();
  CHECK(reserved() == after_first);
}


TEST_CASE("attention (FlashAttention: out and lse), against the definition") {
  cuda g;
  const test::packed_rows rows;
  const int T = rows.tokens();
  for (const auto& c : {std::tuple{4, 4, 16}, std::tuple{4, 2, 8}, std::tuple{4, 1, 64}, std::tuple{6, 2, 128}}) {
    const int hq = std::get<0>(c), hkv = std::get<1>(c), d = std::get<2>(c);  // (no structured bindings: CAPTURE)
    CAPTURE(hq);
    CAPTURE(hkv);
    CAPTURE(d);
    const attention_shape sh{T, hq, hkv, d};
    const std::size_t qs = std::size_t(T) * hq * d, ks = std::size_t(T) * hkv * d;
    auto q = randn(qs, 50), k = randn(ks, 51), v = randn(ks, 52), dout = randn(qs, 53);
    const test::attention_reference want(rows.off, rows.seg, hq, hkv, d, q, k, v, dout);
    auto gq = up(g, q), gk = up(g, k), gv = up(g, v), gdo = up(g, dout), go = g.allocate<float>(qs),
         glse = g.allocate<float>(std::size_t(T) * hq), gdq = g.allocate<float>(qs), gdk = g.allocate<float>(ks),
         gdv = g.allocate<float>(ks);
    auto goff = up(g, rows.off), gseg = up(g, rows.seg);
    const attention_layout lay{int(rows.off.size()) - 1, 70, goff.span(), gseg.span()};

    g.fill(go.span(), NAN);
    g.attention_forward(gq.span(), gk.span(), gv.span(), lay, sh, go.span(), glse.span());
    CHECK(test::max_rel(down(g, go), want.out) < 1e-5);
    CHECK(test::max_rel(down(g, glse), want.lse) < 1e-5);  // +∞ for padding queries
    g.attention_backward(gdo.span(), gq.span(), gk.span(), gv.span(), go.span(), glse.span(), lay, sh, gdq.span(),
                         gdk.span(), gdv.span());
    CHECK(test::max_rel(down(g, gdq), want.dq) < 1e-4);
    CHECK(test::max_rel(down(g, gdk), want.dk) < 1e-4);
    CHECK(test::max_rel(down(g, gdv), want.dv) < 1e-4);

    const attention_layout too_long{lay.rows, 69, goff.span(), gseg.span()};
    CHECK_THROWS_AS(g.attention_forward(gq.span(), gk.span(), gv.span(), too_long, sh, go.span(), glse.span()),
                    shape_error);
  }
}

TEST_CASE("attention: head_dim above the kernels' bound is a shape_error naming it") {
  cuda g;
  const ivec off{0, 3}, seg{0, 0, 0};
  const int d = backends::cuda_kernels::max_head_dim + 1;
  const attention_shape sh{3, 1, 1, d};
  auto x = g.allocate<float>(std::size_t(3) * d), lse = g.allocate<float>(3);
  auto goff = up(g, off), gseg = up(g, seg);
  const attention_layout lay{1, 3, goff.span(), gseg.span()};
  CHECK_THROWS_WITH_AS(g.attention_forward(x.span(), x.span(), x.span(), lay, sh, x.span(), lse.span()),
                       doctest::Contains("head_dim"), shape_error);
}

TEST_CASE("attention_cached (new tokens against a key/value cache), against the eigen backend") {
  cuda g;
  eigen e;
  const int slots = 3, capacity = 40, hq = 4, hkv = 2, d = 16;
  const ivec slot{2, 0, 0, 1, 2}, pos{39, 0, 1, 17, 5};  // a decode token, a 2-token prefill, ...
  const int T = int(slot.size());
  const cached_attention_shape sh{T, hq, hkv, d, slots, capacity};
  const std::size_t qs = std::size_t(T) * hq * d, cs_ = std::size_t(slots) * capacity * hkv * d;
  auto q = randn(qs, 60), k = randn(cs_, 61), v = randn(cs_, 62);
  fvec out(qs, NAN);
  e.attention_cached(cs(q), cs(k), cs(v), ci(slot), ci(pos), sh, ms(out));
  auto gq = up(g, q), gk = up(g, k), gv = up(g, v);
  auto gs = up(g, slot), gp = up(g, pos);
  auto go = g.allocate<float>(qs);
  g.attention_cached(gq.span(), gk.span(), gv.span(), gs.span(), gp.span(), sh, go.span());
  CHECK(max_rel(down(g, go), out) < 1e-5);
  const ivec bad{0, 0, 0, 1, 40};
  auto gb = up(g, bad);
  CHECK_THROWS_AS(g.attention_cached(gq.span(), gk.span(), gv.span(), gs.span(), gb.span(), sh, go.span()), shape_error);
}
