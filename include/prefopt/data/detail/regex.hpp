// prefopt/data/detail/regex.hpp — pre-tokenizer patterns compiled and run by Oniguruma.
//
// The Hugging Face tokenizers library runs Split patterns (and GPT-2's ByteLevel pattern) with
// Oniguruma, through the Rust `onig` crate: Oniguruma syntax, no options, UTF-8. This wrapper does
// the same, so every construct, Unicode property and case-folding rule means what it means there.
// find_all yields the matches the crate's find_iter yields: leftmost matches searched from the end
// of the previous one over the whole text (anchors and lookbehind see the text before), and after
// an empty match that ends where the previous match ended, the search moves one character on.
//
// Bounds, so a hostile tokenizer.json cannot run away with time or memory:
//  - a pattern longer than max_pattern_bytes is refused before compiling; Oniguruma's own parse
//    depth limit (4096 nested groups or stacked quantifiers) refuses the rest of the pathological
//    nesting — compile time stays well under a second;
//  - every search runs with retry limits in a per-search OnigMatchParam (no process-wide setting
//    is changed): retry_limit backtracking steps per match attempt at one position, as the
//    library (Oniguruma's default), and retry_limit + steps_per_byte per byte searched in total
//    per search call. Real patterns take one or two steps per byte (measured with GPT-2's,
//    Llama-3's and Digits' patterns over megabytes of letters, spaces, newlines and
//    punctuation); the limit in search stops a pattern that backtracks heavily at every position
//    long before the per-position limit alone would.
// A pattern that does not compile is a format_error, a search over a limit a data_error; both name
// the tokenizer file, the JSON field and the pattern.
//
// A compiled pattern is immutable and shared by copies; searches from several threads at once
// are safe, each thread bringing its own regex::scratch.
#pragma once

#include <oniguruma.h>

#include <prefopt/core/error.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prefopt::data::detail {

// onig_initialize for UTF-8, once per process (it is idempotent and thread-safe to call here).
inline void oniguruma_init() {
  static const int done = [] {
    OnigEncoding enc = ONIG_ENCODING_UTF8;
    return onig_initialize(&enc, 1);
  }();
  (void)done;
}

class regex {
public:
  using match = std::pair<std::size_t, std::size_t>; // [begin, end) in bytes
  static constexpr std::size_t max_pattern_bytes = 16 * 1024;
  static constexpr unsigned long retry_limit = 10'000'000;
  static constexpr unsigned long steps_per_byte = 64;

  // The per-thread buffers of a search: the match region and the limits.
  class scratch {
  public:
    scratch()
        : region_(onig_region_new(), [](OnigRegion* r) { onig_region_free(r, 1); }),
          param_(onig_new_match_param(), [](OnigMatchParam* p) { onig_free_match_param(p); }) {
      if (!region_ || !param_) throw std::bad_alloc();
      onig_initialize_match_param(param_.get());
      onig_set_retry_limit_in_match_of_match_param(param_.get(), retry_limit);
    }

  private:
    friend class regex;
    std::unique_ptr<OnigRegion, void (*)(OnigRegion*)> region_;
    std::unique_ptr<OnigMatchParam, void (*)(OnigMatchParam*)> param_;
  };

  // Compiles `pattern`; `where` (the tokenizer file and JSON field) goes into every error.
  static regex compile(std::string_view pattern, const std::string& where) {
    oniguruma_init();
    regex r;
    r.pattern_ = pattern;
    r.where_ = where;
    if (pattern.size() > max_pattern_bytes)
      throw format_error(where, "pattern of " + std::to_string(pattern.size()) + " bytes is longer than the limit of " +
                                    std::to_string(max_pattern_bytes) + " bytes: " + r.shown());
    const auto* p = reinterpret_cast<const OnigUChar*>(pattern.data());
    OnigErrorInfo info{};
    regex_t* re = nullptr;
    const int rc = onig_new(&re, p, p + pattern.size(), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8, ONIG_SYNTAX_ONIGURUMA, &info);
    if (rc != ONIG_NORMAL) {
      if (rc == ONIGERR_MEMORY) throw std::bad_alloc();
      throw format_error(where, "pattern " + r.shown() + " does not compile: " + message(rc, &info));
    }
    r.re_ = std::shared_ptr<regex_t>(re, onig_free);
    return r;
  }

  // Every match in `text` (valid UTF-8), as the onig crate's find_iter yields them.
  void find_all(std::string_view text, std::vector<match>& out, scratch& s) const {
    out.clear();
    const auto* str = reinterpret_cast<const OnigUChar*>(text.data());
    const auto* end = str + text.size();
    std::size_t from = 0, last_match_end = 0;
    bool matched = false;
    while (from <= text.size()) {
      onig_region_clear(s.region_.get());
      onig_set_retry_limit_in_search_of_match_param(s.param_.get(), retry_limit + steps_per_byte * (text.size() - from));
      const int rc = onig_search_with_param(re_.get(), str, end, str + from, end, s.region_.get(), ONIG_OPTION_NONE,
                                            s.param_.get());
      if (rc == ONIG_MISMATCH) break;
      if (rc < 0) {
        if (rc == ONIGERR_MEMORY) throw std::bad_alloc();
        throw data_error(where_, "pattern " + shown() + " failed on a text of " + std::to_string(text.size()) +
                                     " bytes: " + message(rc, nullptr) + " (the limits are " +
                                     std::to_string(retry_limit) + " backtracking steps at one position, " +
                                     std::to_string(retry_limit) + " + " + std::to_string(steps_per_byte) +
                                     " per byte in one search)");
      }
      const auto a = static_cast<std::size_t>(s.region_->beg[0]), b = static_cast<std::size_t>(s.region_->end[0]);
      if (a == b && matched && last_match_end == b) { // no empty match right after a match: one character on
        from += from < text.size() ? char_length(static_cast<unsigned char>(text[from])) : 1;
        continue;
      }
      from = last_match_end = b;
      matched = true;
      out.emplace_back(a, b);
    }
  }
  void find_all(std::string_view text, std::vector<match>& out) const {
    scratch s;
    find_all(text, out, s);
  }

  [[nodiscard]] const std::string& pattern() const noexcept { return pattern_; }

private:
  regex() = default;

  static std::size_t char_length(unsigned char lead) noexcept {
    return lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
  }
  static std::string message(int code, OnigErrorInfo* info) {
    OnigUChar buf[ONIG_MAX_ERROR_MESSAGE_LEN];
    const int n = info != nullptr ? onig_error_code_to_str(buf, code, info) : onig_error_code_to_str(buf, code);
    return std::string(reinterpret_cast<const char*>(buf), static_cast<std::size_t>(n > 0 ? n : 0));
  }
  // The pattern as a JSON string, cut after 200 bytes.
  [[nodiscard]] std::string shown() const {
    const bool cut = pattern_.size() > 200;
    return nlohmann::json(cut ? pattern_.substr(0, 200) : pattern_).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
           (cut ? "..." : "");
  }

  std::shared_ptr<regex_t> re_;
  std::string pattern_, where_;
};

} // namespace prefopt::data::detail
