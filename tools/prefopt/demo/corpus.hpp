// tools/prefopt/demo/corpus.hpp — the demo's bundled language: word vocabulary, sentiment lexicon,
// templated review sentences, prompts, and the programmatic reward.
//
// Sentences are short film reviews, generated from a seed:
//   prompt      = [<bos>] opener  ("the N V", "i thought the N V", "overall , the N V", "i found the N", ...)
//   continuation = adj-phrase { connective "the" N V adj-phrase } ("." | "!") <eos>
//   adj-phrase  = [adverb] adjective [ "and" [adverb] adjective ]
// Each sentence has a tone — positive (35%), negative (35%) or mixed (30%) — that sets each
// clause's polarity: a positive review keeps positive clauses with probability 0.85, a mixed one
// flips polarity from clause to clause with probability 0.8. Inside a clause of polarity s an
// adjective is from s's lexicon (strong or mild, half and half) with probability 0.8, else neutral.
// The connective follows the clauses: "and"/"while" when the polarity holds, "but"/"although"/
// "yet" when it turns. So the corpus mixes sentiment, and a model trained on it (π_ref) does too.
//
// Reward of a continuation: the mean lexicon polarity of its adjectives (strong ±1, mild ±0.5,
// neutral 0; other words are not counted), 0 if it has none; in [−1, 1]. As in the controlled
// sentiment task of the DPO paper (Rafailov et al. 2023, §6.1), a fixed scorer rates generations.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/models/detail/random.hpp"

namespace prefopt::cli::demo {

using tokens = std::vector<std::int32_t>;

namespace words {
inline const std::vector<std::string> nouns{
    "movie",  "film",     "plot",     "story",      "acting",  "cast",     "script",     "dialogue", "ending",
    "soundtrack", "music", "pacing",  "direction",  "cinematography", "editing", "humor", "premise", "finale",
    "lead",   "villain",  "setting",  "score",      "tone",    "atmosphere", "sequel",   "screenplay", "camera",
    "performance", "trailer", "climax", "romance",  "twist",   "opening",  "costume",    "design",   "lighting"};
inline const std::vector<std::string> verbs{"was", "is", "felt", "seemed", "looked", "sounded", "remained", "became"};
inline const std::vector<std::string> adverbs{"very", "really", "quite", "rather", "truly", "fairly", "pretty", "somewhat"};
inline const std::vector<std::string> strong_positive{"brilliant", "excellent", "wonderful", "superb", "outstanding", "amazing",
                                                      "fantastic", "masterful", "stunning", "perfect", "gripping", "beautiful",
                                                      "delightful", "moving", "hilarious", "magnificent"};
inline const std::vector<std::string> mild_positive{"good", "nice", "solid", "charming", "pleasant", "enjoyable", "clever", "fun",
                                                    "decent", "fresh", "warm", "sharp", "engaging", "lovely", "sweet", "likable"};
inline const std::vector<std::string> strong_negative{"terrible", "awful", "horrible", "dreadful", "dull", "boring",
                                                      "painful", "pointless", "lifeless", "atrocious", "abysmal", "unbearable",
                                                      "disastrous", "tedious", "ugly", "miserable"};
inline const std::vector<std::string> mild_negative{"weak", "bland", "flat", "clumsy", "messy", "forgettable", "predictable", "stale",
                                                    "slow", "shallow", "awkward", "silly", "thin", "cheap", "tired", "uneven"};
inline const std::vector<std::string> neutral{"long", "short", "quiet", "loud", "simple", "familiar", "unusual", "strange",
                                              "dark", "bright", "old", "modern", "ordinary", "typical", "serious", "plain"};
inline const std::vector<std::string> other{"the", "this", "i", "thought", "found", "overall", "honestly", "my", "friends",
                                            "said", "critics", "agreed", ",", "and", "but", "although", "while", "yet", ".", "!"};
} // namespace words

// Word-level vocabulary: <unk>, <bos>, <eos>, then the word lists above in order.
class vocabulary {
public:
  vocabulary() {
    for (const char* s : {"<unk>", "<bos>", "<eos>"}) add(s);
    for (const auto* list : {&words::other, &words::nouns, &words::verbs, &words::adverbs, &words::strong_positive,
                             &words::mild_positive, &words::strong_negative, &words::mild_negative, &words::neutral})
      for (const auto& w : *list) add(w);
    polarity_.assign(words_.size(), 0.0);
    adjective_.assign(words_.size(), false);
    const std::array<std::pair<const std::vector<std::string>*, double>, 5> lex{
        {{&words::strong_positive, 1.0}, {&words::mild_positive, 0.5}, {&words::strong_negative, -1.0},
         {&words::mild_negative, -0.5}, {&words::neutral, 0.0}}};
    for (const auto& [list, p] : lex)
      for (const auto& w : *list) {
        polarity_[std::size_t(id(w))] = p;
        adjective_[std::size_t(id(w))] = true;
      }
  }
  int size() const { return int(words_.size()); }
  std::int32_t unk() const { return 0; }
  std::int32_t bos() const { return 1; }
  std::int32_t eos() const { return 2; }
  const std::string& word(std::int32_t i) const { return words_.at(std::size_t(i)); }
  std::int32_t id(const std::string& w) const {
    const auto it = ids_.find(w);
    if (it == ids_.end()) throw error("demo vocabulary", "no word '" + w + "'");
    return it->second;
  }
  bool adjective(std::int32_t i) const { return adjective_.at(std::size_t(i)); }
  double polarity(std::int32_t i) const { return polarity_.at(std::size_t(i)); }

  // Words joined by spaces; <bos> dropped, <eos> ends the text.
  std::string decode(std::span<const std::int32_t> ids) const {
    std::string s;
    for (auto i : ids) {
      if (i == eos()) break;
      if (i == bos()) continue;
      if (!s.empty()) s += ' ';
      s += word(i);
    }
    return s;
  }
  // {"word": id, ...} as a word-level tokenizer's vocab.
  nlohmann::json to_json() const {
    nlohmann::json j = nlohmann::json::object();
    for (std::size_t i = 0; i < words_.size(); ++i) j[words_[i]] = i;
    return j;
  }
  // The same vocabulary as a Hugging Face tokenizers file: a WordLevel model over whitespace-split
  // words, <unk>/<bos>/<eos> as special tokens (AutoTokenizer loads it with tokenizer_config()).
  nlohmann::json tokenizer_json() const {
    nlohmann::json added = nlohmann::json::array();
    for (std::int32_t i : {unk(), bos(), eos()})
      added.push_back({{"id", i}, {"content", word(i)}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                       {"normalized", false}, {"special", true}});
    return {{"version", "1.0"},         {"truncation", nullptr}, {"padding", nullptr},
            {"added_tokens", added},    {"normalizer", nullptr}, {"pre_tokenizer", {{"type", "WhitespaceSplit"}}},
            {"post_processor", nullptr}, {"decoder", nullptr},
            {"model", {{"type", "WordLevel"}, {"vocab", to_json()}, {"unk_token", word(unk())}}}};
  }
  nlohmann::json tokenizer_config(int max_length) const {
    return {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"bos_token", word(bos())}, {"eos_token", word(eos())},
            {"unk_token", word(unk())}, {"model_max_length", max_length}};
  }

private:
  void add(const std::string& w) {
    if (ids_.count(w)) throw error("demo vocabulary", "duplicate word '" + w + "'");
    ids_[w] = std::int32_t(words_.size());
    words_.push_back(w);
  }
  std::vector<std::string> words_;
  std::map<std::string, std::int32_t> ids_;
  std::vector<double> polarity_;
  std::vector<bool> adjective_;
};

// Mean polarity of the continuation's adjectives (0 without any), in [−1, 1].
inline double reward(const vocabulary& v, std::span<const std::int32_t> continuation) {
  double sum = 0.0;
  int n = 0;
  for (auto t : continuation) {
    if (t < 0 || t >= v.size()) continue;
    if (v.adjective(t)) sum += v.polarity(t), ++n;
  }
  return n ? sum / n : 0.0;
}

struct sentence {
  tokens prompt;        // <bos> + opener
  tokens continuation;  // ... <eos>
};

// The generator of review sentences described at the top of this file.
class grammar {
public:
  explicit grammar(const vocabulary& v) : v_(v) {}

  static constexpr int openers = 8;
  // Every prompt: opener kind × noun × verb (the verb-less opener once per noun).
  std::vector<tokens> all_prompts() const {
    std::vector<tokens> out;
    for (int k = 0; k < openers; ++k)
      for (std::size_t n = 0; n < words::nouns.size(); ++n) {
        if (k == 6) {
          out.push_back(opener(k, n, 0));
          continue;
        }
        for (std::size_t b = 0; b < words::verbs.size(); ++b) out.push_back(opener(k, n, b));
      }
    return out;
  }

  sentence draw(std::mt19937_64& rng, std::size_t max_tokens) const {
    for (;;) {
      const int k = pick(rng, openers);
      sentence s{opener(k, std::size_t(pick(rng, int(words::nouns.size()))), std::size_t(pick(rng, int(words::verbs.size())))), {}};
      const double t = u(rng);
      const int tone = t < 0.35 ? 1 : t < 0.70 ? -1 : 0;  // +1 positive, −1 negative, 0 mixed
      const double c = u(rng);
      const int clauses = c < 0.45 ? 1 : c < 0.85 ? 2 : 3;
      int pol = tone != 0 ? (u(rng) < 0.85 ? tone : -tone) : (u(rng) < 0.5 ? 1 : -1);
      adjective_phrase(s.continuation, pol, rng);
      for (int i = 1; i < clauses; ++i) {
        const int next = tone != 0 ? (u(rng) < 0.85 ? tone : -tone) : (u(rng) < 0.8 ? -pol : pol);
        static const char* same[] = {"and", "and", "while"};
        static const char* turn[] = {"but", "but", "although", "yet"};
        push(s.continuation, next == pol ? same[pick(rng, 3)] : turn[pick(rng, 4)]);
        push(s.continuation, "the");
        push(s.continuation, words::nouns[std::size_t(pick(rng, int(words::nouns.size())))]);
        push(s.continuation, words::verbs[std::size_t(pick(rng, int(words::verbs.size())))]);
        adjective_phrase(s.continuation, next, rng);
        pol = next;
      }
      push(s.continuation, tone != 0 && u(rng) < 0.2 ? "!" : ".");
      s.continuation.push_back(v_.eos());
      if (s.prompt.size() + s.continuation.size() <= max_tokens) return s;
    }
  }

private:
  static double u(std::mt19937_64& rng) { return models::detail::uniform01(rng); }
  static int pick(std::mt19937_64& rng, int n) { return std::min(n - 1, int(u(rng) * n)); }
  void push(tokens& t, const std::string& w) const { t.push_back(v_.id(w)); }

  tokens opener(int k, std::size_t noun, std::size_t verb) const {
    tokens t{v_.bos()};
    static const std::vector<std::vector<std::string>> lead{
        {"the"}, {"this"}, {"i", "thought", "the"}, {"overall", ",", "the"}, {"honestly", ",", "the"},
        {"my", "friends", "said", "the"}, {"i", "found", "the"}, {"critics", "agreed", "the"}};
    for (const auto& w : lead[std::size_t(k)]) push(t, w);
    push(t, words::nouns[noun]);
    if (k != 6) push(t, words::verbs[verb]);
    return t;
  }

  void adjective_phrase(tokens& t, int pol, std::mt19937_64& rng) const {
    const int n = u(rng) < 0.3 ? 2 : 1;
    for (int i = 0; i < n; ++i) {
      if (i > 0) push(t, "and");
      if (u(rng) < 0.3) push(t, words::adverbs[std::size_t(pick(rng, int(words::adverbs.size())))]);
      const std::vector<std::string>* list = &words::neutral;
      if (u(rng) < 0.8) {
        const bool strong = u(rng) < 0.5;
        list = pol > 0 ? (strong ? &words::strong_positive : &words::mild_positive)
                       : (strong ? &words::strong_negative : &words::mild_negative);
      }
      push(t, (*list)[std::size_t(pick(rng, int(list->size())))]);
    }
  }

  const vocabulary& v_;
};

} // namespace prefopt::cli::demo
