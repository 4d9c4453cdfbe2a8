// prefopt/data/detail/regex_compile.hpp — from a parsed pattern to the regex program and its start sets.
//
// Each node becomes instructions: a literal or class consumes one code point; alternation is a
// chain of splits (the left alternative preferred); x* is "L: split(body, out); body; jump L"
// with the preference swapped when lazy; {m,n} repeats the body m times, then n-m optional
// copies; lookahead and atomic groups become sub-programs ending in `match`. Start sets record,
// for every instruction, which next characters can let it succeed (see regex.hpp).
#pragma once

#include <prefopt/data/detail/regex.hpp>

namespace prefopt::data::detail {

inline void regex::compute_start_sets() {
  starts_.assign(progs_.size(), {});
  for (std::size_t prog = 0; prog < progs_.size(); ++prog) {
    std::vector<std::uint8_t> state(progs_[prog].size(), 0); // 0 new, 1 in progress, 2 done
    starts_[prog].resize(progs_[prog].size());
    for (std::uint32_t pc = 0; pc < progs_[prog].size(); ++pc) start_of(prog, pc, state);
  }
}

inline const regex::start_set& regex::start_of(std::size_t prog, std::uint32_t pc, std::vector<std::uint8_t>& state) {
  start_set& s = starts_[prog][pc];
  if (state[pc] == 2) return s;
  if (state[pc] == 1) { // a cycle without consuming cannot happen; be safe anyway
    s.nullable = true;
    return s;
  }
  state[pc] = 1;
  const inst in = progs_[prog][pc];
  switch (in.code) {
  case op::literal:
    if (in.a < 256) s.low.set(in.a);
    else s.wide = true;
    break;
  case op::literal_icase:
    for (char32_t c = 0; c < 256; ++c)
      if (unicode::fold_case(c) == in.a) s.low.set(c);
    s.wide = true;
    break;
  case op::cls: s.low = classes_[in.a].low; s.wide = true; break;
  case op::cls_icase: s.low = classes_[in.a].low_icase; s.wide = true; break;
  case op::any: s.low.set(); s.wide = true; break;
  case op::any_nl: s.low.set(); s.low.reset('\n'); s.wide = true; break;
  case op::split: {
    const start_set a = start_of(prog, in.a, state), b = start_of(prog, in.b, state);
    s.low = a.low | b.low;
    s.wide = a.wide || b.wide;
    s.nullable = a.nullable || b.nullable;
    break;
  }
  case op::jump: s = start_of(prog, in.a, state); break;
  case op::anchor: case op::look: case op::look_neg: s = start_of(prog, pc + 1, state); break; // zero width
  case op::match: case op::atomic: s.nullable = true; break;
  }
  state[pc] = 2;
  return starts_[prog][pc];
}

inline std::uint32_t regex::push(std::size_t prog, inst in) {
  auto& code = progs_[prog];
  if (code.size() >= max_program) throw format_error(where_, "regex pattern compiles to too large a program");
  code.push_back(in);
  return static_cast<std::uint32_t>(code.size() - 1);
}

inline std::uint32_t regex::sub_program(const rx::node& body) {
  const std::size_t idx = progs_.size();
  progs_.emplace_back();
  emit(body, idx);
  push(idx, {op::match, 0, 0, 0});
  return static_cast<std::uint32_t>(idx);
}

inline void regex::emit(const rx::node& n, std::size_t prog) {
  using k = rx::node::kind;
  switch (n.k) {
  case k::empty: return;
  case k::literal: push(prog, {n.icase ? op::literal_icase : op::literal, 0, n.ch, 0}); return;
  case k::cls: push(prog, {n.icase ? op::cls_icase : op::cls, 0, static_cast<std::uint32_t>(n.cls), 0}); return;
  case k::any: push(prog, {n.dotall ? op::any : op::any_nl, 0, 0, 0}); return;
  case k::assertion: push(prog, {op::anchor, static_cast<std::uint8_t>(n.where), 0, 0}); return;
  case k::concat:
    for (const auto& kid : n.kids) emit(kid, prog);
    return;
  case k::alternate: {
    std::vector<std::uint32_t> jumps;
    for (std::size_t i = 0; i + 1 < n.kids.size(); ++i) {
      const auto s = push(prog, {op::split, 0, 0, 0});
      progs_[prog][s].a = here(prog);
      emit(n.kids[i], prog);
      jumps.push_back(push(prog, {op::jump, 0, 0, 0}));
      progs_[prog][s].b = here(prog);
    }
    emit(n.kids.back(), prog);
    for (auto j : jumps) progs_[prog][j].a = here(prog);
    return;
  }
  case k::look: push(prog, {n.negate ? op::look_neg : op::look, 0, sub_program(n.kids[0]), 0}); return;
  case k::atomic: push(prog, {op::atomic, 0, sub_program(n.kids[0]), 0}); return;
  case k::repeat: emit_repeat(n, prog); return;
  }
}

// A split preferring `body` (greedy) or `skip` (lazy).
inline void regex::set_split(std::size_t prog, std::uint32_t s, bool greedy, std::uint32_t body, std::uint32_t skip) {
  progs_[prog][s].a = greedy ? body : skip;
  progs_[prog][s].b = greedy ? skip : body;
}

inline void regex::emit_repeat(const rx::node& n, std::size_t prog) {
  if (n.possessive) {
    rx::node plain = n;
    plain.possessive = false;
    const auto sub = static_cast<std::uint32_t>(progs_.size());
    progs_.emplace_back();
    emit_repeat(plain, sub);
    push(sub, {op::match, 0, 0, 0});
    push(prog, {op::atomic, 0, sub, 0});
    return;
  }
  const rx::node& body = n.kids[0];
  for (int i = 0; i < n.min; ++i) emit(body, prog);
  if (n.max < 0) {
    const auto s = push(prog, {op::split, 0, 0, 0});
    emit(body, prog);
    push(prog, {op::jump, 0, s, 0});
    set_split(prog, s, n.greedy, s + 1, here(prog));
    return;
  }
  std::vector<std::uint32_t> splits;
  for (int i = n.min; i < n.max; ++i) {
    splits.push_back(push(prog, {op::split, 0, 0, 0}));
    emit(body, prog);
  }
  for (auto s : splits) set_split(prog, s, n.greedy, s + 1, here(prog));
}

} // namespace prefopt::data::detail
