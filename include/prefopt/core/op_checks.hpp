// prefopt/core/op_checks.hpp — the size checks of the op contracts, shared by every backend.
//
// The contracts are those of core/backend.hpp and core/transformer_ops.hpp. Each check throws
// shape_error naming the op and the argument. The per-op functions below check every argument's
// size once, for all backends (eigen, xtensor and cuda call them before their arithmetic), and
// return the dimensions the op derives; value checks (token ids in range) stay with each backend,
// since on a GPU they run on the device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "prefopt/core/error.hpp"
#include "prefopt/core/transformer_ops.hpp"

namespace prefopt::op_checks {

[[noreturn]] inline void bad(const char* op, const char* arg, const std::string& why) {
  throw shape_error(std::string("backend op '") + op + "': argument '" + arg + "'", why);
}
inline void require_size(std::size_t have, std::size_t need, const char* op, const char* arg) {
  if (have < need) bad(op, arg, "has " + std::to_string(have) + " elements, needs " + std::to_string(need));
}
// An optional output: empty, or at least `need` elements.
inline void require_optional(std::size_t have, std::size_t need, const char* op, const char* arg) {
  if (have != 0) require_size(have, need, op, arg);
}
// A size argument that must be positive.
inline std::size_t positive(int v, const char* op, const char* arg) {
  if (v <= 0) bad(op, arg, "must be positive, is " + std::to_string(v));
  return std::size_t(v);
}
// Rows of a flat [rows × cols] buffer of n elements; n must be a multiple of cols.
inline std::size_t rows_of(std::size_t n, std::size_t cols, const char* op, const char* arg) {
  if (n % cols != 0)
    bad(op, arg, "has " + std::to_string(n) + " elements, not a multiple of " + std::to_string(cols) + " columns");
  return n / cols;
}
// Elements a row-major matrix of `rows` rows and row stride `ld` spans (last row may be short).
inline std::size_t span_of(int rows, int cols, int ld) {
  return rows == 0 || cols == 0 ? 0 : std::size_t(rows - 1) * std::size_t(ld) + std::size_t(cols);
}
// An index into n elements.
inline std::size_t index(std::int32_t i, std::size_t n, const char* op) {
  if (i < 0 || std::size_t(i) >= n)
    throw shape_error(std::string("backend op '") + op + "'",
                      "index " + std::to_string(i) + " outside [0, " + std::to_string(n) + ")");
  return std::size_t(i);
}


// ---- per-op contracts ---------------------------------------------------------------------
// [T × C] rows of a row-wise op.
struct row_dims {
  std::size_t rows = 0, cols = 0;
};

// x, w, b [C], C → out [T × C], mean, rstd [T]
inline row_dims layernorm_forward(std::size_t x, std::size_t w, std::size_t b, int C, std::size_t out, std::size_t mean,
                                  std::size_t rstd) {
  const char* op = "layernorm_forward";
  const std::size_t c = positive(C, op, "C"), T = rows_of(x, c, op, "x");
  require_size(w, c, op, "w");
  require_size(b, c, op, "b");
  require_size(out, T * c, op, "out");
  require_size(mean, T, op, "mean");
  require_size(rstd, T, op, "rstd");
  return {T, c};
}
// dout, x [T × C], w [C], mean, rstd [T] → dx [T × C], dw, db [C]
inline row_dims layernorm_backward(std::size_t dout, std::size_t x, std::size_t w, std::size_t mean, std::size_t rstd,
                                   int C, std::size_t dx, std::size_t dw, std::size_t db) {
  const char* op = "layernorm_backward";
  const std::size_t c = positive(C, op, "C"), T = rows_of(dout, c, op, "dout");
  require_size(x, T * c, op, "x");
  require_size(w, c, op, "w");
  require_size(mean, T, op, "mean");
  require_size(rstd, T, op, "rstd");
  require_size(dx, T * c, op, "dx");
  require_size(dw, c, op, "dw");
  require_size(db, c, op, "db");
  return {T, c};
}
// x [T × C], w [C] → out [T × C], rstd [T]
inline row_dims rmsnorm_forward(std::size_t x, std::size_t w, int C, std::size_t out, std::size_t rstd) {
  const char* op = "rmsnorm_forward";
  const std::size_t c = positive(C, op, "C"), T = rows_of(x, c, op, "x");
  require_size(w, c, op, "w");
  require_size(out, T * c, op, "out");
  require_size(rstd, T, op, "rstd");
  return {T, c};
}
// dout, x [T × C], w [C], rstd [T] → dx [T × C], dw [C]
inline row_dims rmsnorm_backward(std::size_t dout, std::size_t x, std::size_t w, std::size_t rstd, int C,
                                 std::size_t dx, std::size_t dw) {
  const char* op = "rmsnorm_backward";
  const std::size_t c = positive(C, op, "C"), T = rows_of(dout, c, op, "dout");
  require_size(x, T * c, op, "x");
  require_size(w, c, op, "w");
  require_size(rstd, T, op, "rstd");
  require_size(dx, T * c, op, "dx");
  require_size(dw, c, op, "dw");
  return {T, c};
}
// ids [n], table [vocab × C], rows [n × C] (out or dout): {n, C}; vocab = table / C.
inline row_dims embedding(const char* op, std::size_t ids, int C, std::size_t rows, const char* rows_name) {
  const std::size_t c = positive(C, op, "C");
  require_size(rows, ids * c, op, rows_name);
  return {ids, c};
}
// bias [N], rows [T × N] (out or dout), bias or dbias: {T, N}
inline row_dims bias(const char* op, std::size_t bias, const char* bias_name, int N, std::size_t rows,
                     const char* rows_name) {
  const std::size_t n = positive(N, op, "N"), T = rows_of(rows, n, op, rows_name);
  require_size(bias, n, op, bias_name);
  return {T, n};
}
// gate [n], up, dout → dgate, dup [n]
inline void swiglu_backward(std::size_t gate, std::size_t up, std::size_t dout, std::size_t dgate, std::size_t dup) {
  const char* op = "swiglu_backward";
  require_size(up, gate, op, "up");
  require_size(dout, gate, op, "dout");
  require_size(dgate, gate, op, "dgate");
  require_size(dup, gate, op, "dup");
}
// q, out [T × Hq·D]; k, v [T × Hkv·D]; lse [T × Hq] (sizes the backend derived from the layout)
struct attention_sizes {
  std::size_t q = 0, kv = 0, lse = 0;
};
inline void attention_forward(const attention_sizes& n, std::size_t q, std::size_t k, std::size_t v, std::size_t out,
                              std::size_t lse) {
  const char* op = "attention_forward";
  require_size(q, n.q, op, "q");
  require_size(k, n.kv, op, "k");
  require_size(v, n.kv, op, "v");
  require_size(out, n.q, op, "out");
  require_size(lse, n.lse, op, "lse");
}
inline void attention_backward(const attention_sizes& n, std::size_t dout, std::size_t q, std::size_t k, std::size_t v,
                               std::size_t out, std::size_t lse, std::size_t dq, std::size_t dk, std::size_t dv) {
  const char* op = "attention_backward";
  require_size(dout, n.q, op, "dout");
  require_size(q, n.q, op, "q");
  require_size(k, n.kv, op, "k");
  require_size(v, n.kv, op, "v");
  require_size(out, n.q, op, "out");
  require_size(lse, n.lse, op, "lse");
  require_size(dq, n.q, op, "dq");
  require_size(dk, n.kv, op, "dk");
  require_size(dv, n.kv, op, "dv");
}
// logits [rows × V], targets [rows] → the statistics of lm_head_stats: {rows, V}
inline row_dims lm_head_rows(const char* op, std::size_t logits, std::size_t targets, int rows, int V) {
  if (rows < 0) bad(op, "rows", "is negative");
  const std::size_t R = std::size_t(rows), n = positive(V, op, "V");
  require_size(logits, R * n, op, "logits");
  require_size(targets, R, op, "targets");
  return {R, n};
}
inline row_dims lm_head_stats(std::size_t logits, std::size_t targets, int rows, int V,
                              const prefopt::lm_head_stats& st) {
  const char* op = "lm_head_stats";
  const row_dims d = lm_head_rows(op, logits, targets, rows, V);
  require_size(st.lse.size(), d.rows, op, "stats.lse");
  require_size(st.logp.size(), d.rows, op, "stats.logp");
  require_optional(st.log_sum_sq.size(), d.rows, op, "stats.log_sum_sq");
  require_optional(st.entropy.size(), d.rows, op, "stats.entropy");
  require_optional(st.mean_logit.size(), d.rows, op, "stats.mean_logit");
  require_optional(st.top1.size(), d.rows, op, "stats.top1");
  return d;
}
// logits [rows × V], targets, lse, dlogp [rows] → dlogits [rows × V]
inline row_dims lm_head_backward(std::size_t logits, std::size_t targets, std::size_t lse, std::size_t dlogp, int rows,
                                 int V, std::size_t dlogits) {
  const char* op = "lm_head_backward";
  const row_dims d = lm_head_rows(op, logits, targets, rows, V);
  require_size(lse, d.rows, op, "lse");
  require_size(dlogp, d.rows, op, "dlogp");
  require_size(dlogits, d.rows * d.cols, op, "dlogits");
  return d;
}

} // namespace prefopt::op_checks
