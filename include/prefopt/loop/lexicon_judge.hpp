// prefopt/loop/lexicon_judge.hpp — a programmatic judge: the mean weight of a completion's lexicon
// words, as the controlled-sentiment task of the DPO paper (Rafailov et al. 2023, §6.1) rates
// generations with a fixed scorer (`prefopt demo` scores its reviews this way).
//
// A completion is split into words: maximal runs of ASCII letters, digits and apostrophes, lowered
// to ASCII lower case (other bytes, UTF-8 included, separate words). Its score is the mean weight
// of the words found in the lexicon (a word listed with weight 0 counts in the mean: a neutral
// adjective dilutes a positive one); 0 when none is found. The prompt is not scored.
#pragma once

#include <cctype>
#include <cmath>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "prefopt/loop/judge.hpp"

namespace prefopt::loop {

class lexicon_judge {
public:
  explicit lexicon_judge(std::map<std::string, double> weights, std::string name = "lexicon") : w_(std::move(weights)), name_(std::move(name)) {
    for (const auto& [word, v] : w_) {
      if (!std::isfinite(v)) throw config_error("judge '" + name_ + "': word '" + word + "'", "weight is not finite");
      if (word.empty() || words(word) != std::vector<std::string>{word})
        throw config_error("judge '" + name_ + "': word '" + word + "'", "must be one lower-case word (letters, digits, ')");
    }
  }

  // The words of a text, as the judge splits it.
  static std::vector<std::string> words(const std::string& text) {
    std::vector<std::string> out;
    std::string cur;
    for (const char ch : text) {
      const auto c = static_cast<unsigned char>(ch);
      if (c < 0x80 && (std::isalnum(c) || c == '\'')) {
        cur += char(std::tolower(c));
      } else if (!cur.empty()) {
        out.push_back(std::move(cur));
        cur.clear();
      }
    }
    if (!cur.empty()) out.push_back(std::move(cur));
    return out;
  }

  double score_one(const std::string& completion) const {
    double sum = 0.0;
    std::size_t n = 0;
    for (const auto& w : words(completion))
      if (const auto it = w_.find(w); it != w_.end()) sum += it->second, ++n;
    return n ? sum / double(n) : 0.0;
  }

  std::vector<std::vector<double>> score(std::span<const judge_request> batch) const {
    std::vector<std::vector<double>> out;
    out.reserve(batch.size());
    for (const auto& r : batch) {
      std::vector<double> s;
      for (const auto& c : r.completions) s.push_back(score_one(c));
      out.push_back(std::move(s));
    }
    check_scores(name_, batch, out);
    return out;
  }
  std::string name() const { return name_; }

private:
  std::map<std::string, double> w_;
  std::string name_;
};

static_assert(scoring_judge<lexicon_judge>);

} // namespace prefopt::loop
