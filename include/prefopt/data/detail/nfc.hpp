// prefopt/data/detail/nfc.hpp — Unicode Normalization Form C (canonical composition).
//
// NFC(s) = compose(reorder(decompose(s))) as in UAX #15: every code point is replaced by its full
// canonical decomposition (Hangul syllables algorithmically), runs of non-starters are sorted
// stably by canonical combining class, and then each character is composed with the last
// starter when that starter is not blocked and the pair is a primary composite. Runs of
// characters NFC cannot change are copied without that work.
// Tables: unicode_tables.hpp (Unicode 16.0). The composition lookup is built once per
// nfc_normalizer object (the tokenizer owns one), so there is no global state.
#pragma once

#include <prefopt/data/detail/unicode.hpp>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prefopt::data::detail {

class nfc_normalizer {
public:
  nfc_normalizer() : unstable_low_(0x10000, false) {
    auto mark = [&](char32_t c) {
      if (c < unstable_low_.size()) unstable_low_[c] = true;
      else unstable_high_.push_back(c);
    };
    for (const auto& d : unicode::canonical_decomposition) {
      if (d.composes) {
        compositions_.emplace_back(key(d.first, d.second), d.cp);
        mark(d.second); // may compose with what precedes it
      } else {
        mark(d.cp); // singletons and composition exclusions never survive NFC
      }
    }
    for (const auto& r : unicode::combining_class)
      for (char32_t c = r.lo; c <= r.hi; ++c) mark(c); // may be reordered
    for (char32_t c = v_base; c < v_base + v_count; ++c) mark(c);     // Hangul vowels and
    for (char32_t c = t_base + 1; c < t_base + t_count; ++c) mark(c); // trailing consonants compose
    std::sort(compositions_.begin(), compositions_.end());
    std::sort(unstable_high_.begin(), unstable_high_.end());
  }

  // NFC of valid UTF-8 text. Text is cut before every "stable" character (a starter that is
  // unchanged by NFC and never composes with what precedes it): nothing crosses such a cut, so
  // only the pieces holding other characters go through decompose/reorder/compose.
  [[nodiscard]] std::string normalize(std::string_view text) const {
    if (std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0xC0; }))
      return std::string(text); // only ASCII (no lead byte of a multi-byte sequence)
    std::vector<char32_t> cps;
    unicode::decode_utf8(text, cps, nullptr);
    std::vector<char32_t> out, piece;
    out.reserve(cps.size() + 8);
    std::size_t start = 0;
    bool dirty = false, changed = false;
    auto flush = [&](std::size_t end) {
      changed = changed || dirty;
      if (!dirty) {
        out.insert(out.end(), cps.begin() + static_cast<std::ptrdiff_t>(start), cps.begin() + static_cast<std::ptrdiff_t>(end));
        return;
      }
      piece.clear();
      for (std::size_t i = start; i < end; ++i) decompose(cps[i], piece);
      reorder(piece);
      compose(piece);
      out.insert(out.end(), piece.begin(), piece.end());
    };
    for (std::size_t i = 0; i < cps.size(); ++i) {
      if (unstable(cps[i])) {
        dirty = true;
      } else if (i > start) {
        flush(i);
        start = i;
        dirty = false;
      }
    }
    flush(cps.size());
    return changed ? unicode::encode_utf8(out) : std::string(text);
  }

  [[nodiscard]] static std::uint8_t combining_class(char32_t c) noexcept {
    if (c < 0x300) return 0;
    const auto& t = unicode::combining_class;
    const auto* it = std::upper_bound(std::begin(t), std::end(t), c,
                                      [](char32_t v, const unicode::ccc_run& r) { return v < r.lo; });
    if (it == std::begin(t)) return 0;
    const auto& r = *std::prev(it);
    return c <= r.hi ? r.ccc : 0;
  }

private:
  static constexpr char32_t s_base = 0xAC00, l_base = 0x1100, v_base = 0x1161, t_base = 0x11A7;
  static constexpr char32_t l_count = 19, v_count = 21, t_count = 28, n_count = v_count * t_count,
                            s_count = l_count * n_count;

  static std::uint64_t key(char32_t a, char32_t b) noexcept { return (std::uint64_t{a} << 32) | b; }

  static void decompose(char32_t c, std::vector<char32_t>& out) {
    if (c >= s_base && c < s_base + s_count) {
      const char32_t s = c - s_base;
      out.push_back(l_base + s / n_count);
      out.push_back(v_base + (s % n_count) / t_count);
      if (s % t_count != 0) out.push_back(t_base + s % t_count);
      return;
    }
    if (c < 0xC0) {
      out.push_back(c);
      return;
    }
    const auto& t = unicode::canonical_decomposition;
    const auto* it = std::lower_bound(std::begin(t), std::end(t), c,
                                      [](const unicode::decomposition& d, char32_t v) { return d.cp < v; });
    if (it == std::end(t) || it->cp != c) {
      out.push_back(c);
      return;
    }
    decompose(it->first, out);
    if (it->second != 0) decompose(it->second, out);
  }

  // Canonical ordering: stable insertion sort of each run of non-starters by combining class.
  static void reorder(std::vector<char32_t>& s) {
    for (std::size_t i = 1; i < s.size(); ++i) {
      const std::uint8_t cc = combining_class(s[i]);
      if (cc == 0) continue;
      std::size_t j = i;
      while (j > 0) {
        const std::uint8_t prev = combining_class(s[j - 1]);
        if (prev == 0 || prev <= cc) break;
        std::swap(s[j - 1], s[j]);
        --j;
      }
    }
  }

  [[nodiscard]] char32_t compose_pair(char32_t a, char32_t b) const noexcept {
    if (a >= l_base && a < l_base + l_count && b >= v_base && b < v_base + v_count)
      return s_base + ((a - l_base) * v_count + (b - v_base)) * t_count;
    if (a >= s_base && a < s_base + s_count && (a - s_base) % t_count == 0 && b > t_base && b < t_base + t_count)
      return a + (b - t_base);
    const auto k = key(a, b);
    const auto it = std::lower_bound(compositions_.begin(), compositions_.end(), std::pair<std::uint64_t, char32_t>{k, 0});
    return (it != compositions_.end() && it->first == k) ? it->second : 0;
  }

  void compose(std::vector<char32_t>& s) const {
    if (s.empty()) return;
    std::size_t starter = 0, out = 1;
    int last_class = combining_class(s[0]) == 0 ? 0 : 256;
    for (std::size_t i = 1; i < s.size(); ++i) {
      const char32_t c = s[i];
      const int cc = combining_class(c);
      const char32_t composite = compose_pair(s[starter], c);
      if (composite != 0 && (last_class < cc || last_class == 0)) {
        s[starter] = composite;
        continue;
      }
      if (cc == 0) starter = out;
      last_class = cc;
      s[out++] = c;
    }
    s.resize(out);
  }

  [[nodiscard]] bool unstable(char32_t c) const {
    if (c < unstable_low_.size()) return unstable_low_[c];
    return std::binary_search(unstable_high_.begin(), unstable_high_.end(), c);
  }

  std::vector<std::pair<std::uint64_t, char32_t>> compositions_;
  std::vector<bool> unstable_low_;     // below U+10000
  std::vector<char32_t> unstable_high_; // sorted, from U+10000
};

} // namespace prefopt::data::detail
