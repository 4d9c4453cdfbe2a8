// prefopt/loop/reward_model_judge.hpp — a Bradley–Terry reward model (models::reward_model) as a
// scoring judge.
//
// Each completion is tokenized as `prefopt reward train` tokenized the model's text training pairs
// (TRL's text format: the prompt with the tokenizer's special tokens, then the completion with the
// EOS token appended; data::tokenize_pair with the same collate_options, truncation included),
// and prompt + completion is scored as one sequence at its last non-padding token. Sequences are
// scored `batch_sequences` at a time, in request order; a batch's composition does not change a
// score beyond float rounding. The judge borrows the model: it must outlive the judge.
// The prompt is taken as rendered text (judge_request::prompt), so a reward model trained on
// conversational pairs sees the prompt as the policy saw it and the completion as plain text.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "prefopt/data/collate.hpp"
#include "prefopt/data/tokenizer.hpp"
#include "prefopt/loop/judge.hpp"
#include "prefopt/models/reward_model.hpp"

namespace prefopt::loop {

template <class RewardModel> class reward_model_judge {
public:
  // options.eos_token must name the tokenizer's EOS token (text completions end with it).
  reward_model_judge(RewardModel& model, data::tokenizer tok, data::collate_options options, std::size_t batch_sequences = 16,
                     std::string name = "reward model")
      : model_(&model), tok_(std::move(tok)), options_(std::move(options)), batch_(std::max<std::size_t>(batch_sequences, 1)),
        name_(std::move(name)) {
    if (options_.eos_token.empty())
      throw config_error("judge '" + name_ + "'", "the tokenizer's EOS token is needed (text completions end with it)");
  }

  // The token ids one (prompt, completion) is scored on.
  std::vector<std::int32_t> sequence(const std::string& prompt, const std::string& completion) const {
    data::preference_record rec{.prompt = prompt, .chosen = completion, .rejected = completion};
    models::tokenized_pair p = data::tokenize_pair(rec, tok_, nullptr, options_, "judge '" + name_ + "'");
    data::truncate_pair(p, options_.max_length, options_.max_prompt_length);
    p.prompt.insert(p.prompt.end(), p.chosen.begin(), p.chosen.end());
    if (p.prompt.empty()) throw judge_error("judge '" + name_ + "'", "a prompt and completion tokenize to no token");
    const auto vocab = std::int32_t(model_->body().config().vocab_size);
    for (auto id : p.prompt)
      if (id < 0 || id >= vocab)
        throw judge_error("judge '" + name_ + "'", "token id " + std::to_string(id) + " is outside the reward model's vocabulary of " +
                                                       std::to_string(vocab) + " (a different tokenizer?)");
    return std::move(p.prompt);
  }

  std::vector<std::vector<double>> score(std::span<const judge_request> batch) {
    std::vector<std::vector<std::int32_t>> seqs;
    for (const auto& r : batch)
      for (const auto& c : r.completions) seqs.push_back(sequence(r.prompt, c));
    std::vector<double> flat;
    flat.reserve(seqs.size());
    for (std::size_t s = 0; s < seqs.size(); s += batch_) {
      std::vector<std::vector<std::int32_t>> part(seqs.begin() + std::ptrdiff_t(s),
                                                  seqs.begin() + std::ptrdiff_t(std::min(seqs.size(), s + batch_)));
      const auto sc = model_->forward(model_->pack(part), {.keep_activations = false});
      flat.insert(flat.end(), sc.begin(), sc.end());
    }
    std::vector<std::vector<double>> out(batch.size());
    std::size_t k = 0;
    for (std::size_t i = 0; i < batch.size(); ++i)
      for (std::size_t c = 0; c < batch[i].completions.size(); ++c) out[i].push_back(flat[k++]);
    check_scores(name_, batch, out);
    return out;
  }
  std::string name() const { return name_; }

private:
  RewardModel* model_;
  data::tokenizer tok_;
  data::collate_options options_;
  std::size_t batch_;
  std::string name_;
};

} // namespace prefopt::loop
