// prefopt/data/tokenizer_impl.hpp — member definitions of prefopt::data::tokenizer.
#pragma once

#include <prefopt/data/tokenizer.hpp>

#include <fstream>
#include <sstream>

namespace prefopt::data {

inline tokenizer tokenizer::from_file(const std::filesystem::path& tokenizer_json) {
  const std::string name = tokenizer_json.string();
  std::ifstream in(tokenizer_json, std::ios::binary);
  if (!in) throw io_error(name, "cannot open the file for reading");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw io_error(name, "read failed");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(buffer.str());
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for 1e400
    throw format_error(name, std::string("invalid JSON: ") + e.what());
  }
  return from_json(j, name);
}

inline tokenizer tokenizer::from_json(const nlohmann::json& j, std::string source_name) {
  return tokenizer(detail::tokenizer_json_reader(std::move(source_name)).read(j));
}

inline std::vector<std::int32_t> tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const detail::tokenizer_state& st = *state_;
  if (const auto bad = detail::unicode::find_invalid_utf8(text); bad != std::string_view::npos)
    throw data_error("tokenizer::encode", "text is not valid UTF-8 (byte offset " + std::to_string(bad) + ")");

  // Added tokens that match the raw text, then normalization, then those that match normalized text.
  std::vector<detail::segment> raw, segments;
  st.added.split(text, st.added.raw, raw);
  for (auto& seg : raw) {
    if (seg.id >= 0 || (st.normalizers.empty() && st.added.normalized.empty())) segments.push_back(std::move(seg));
    else st.added.split(st.normalize(seg.text), st.added.normalized, segments);
  }

  std::vector<std::int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  detail::encode_scratch scratch;
  std::vector<std::string> pieces;
  for (auto& seg : segments) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    pieces.clear();
    pieces.push_back(std::move(seg.text));
    for (const auto& step : st.pre_tokenizers) apply_pre_tokenizer(step, st.bytes, pieces, scratch);
    for (const auto& p : pieces) st.model.tokenize(p, ids, cache_.get());
  }
  if (add_special_tokens)
    for (const auto& step : st.post_processors) detail::apply_post_processor(step, ids);
  return ids;
}

inline const std::string* tokenizer::content_of(std::int32_t id) const {
  if (const auto it = state_->added.normalized_forms.find(id); it != state_->added.normalized_forms.end()) return &it->second;
  if (const auto it = state_->added.tokens.find(id); it != state_->added.tokens.end()) return &it->second.content;
  if (const auto it = state_->model.vocab_r.find(id); it != state_->model.vocab_r.end()) return &it->second;
  return nullptr;
}

inline std::string tokenizer::decode(std::span<const std::int32_t> ids, bool skip_special_tokens) const {
  const detail::tokenizer_state& st = *state_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const std::string* content = content_of(ids[i]);
    if (content == nullptr)
      throw data_error("tokenizer::decode", "ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) +
                                                " is not in the vocabulary (size " + std::to_string(st.vocab_size) + ")");
    if (skip_special_tokens && st.added.special_contents.contains(*content)) continue;
    tokens.push_back(*content);
  }
  std::string out;
  if (!st.has_decoder) {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) out += ' ';
      out += tokens[i];
    }
    return out;
  }
  for (detail::decoder_step step : st.decoders) detail::apply_decoder(step, st.bytes, tokens);
  for (const auto& t : tokens) out += t;
  return out;
}

inline std::optional<std::int32_t> tokenizer::token_to_id(std::string_view token) const {
  return state_->added.token_to_id(token, state_->model);
}

inline std::string tokenizer::id_to_token(std::int32_t id) const {
  const std::string* content = content_of(id);
  if (content == nullptr)
    throw data_error("tokenizer::id_to_token", "id " + std::to_string(id) + " is not in the vocabulary (size " +
                                                   std::to_string(state_->vocab_size) + ")");
  return *content;
}

inline std::size_t tokenizer::vocab_size() const noexcept { return static_cast<std::size_t>(state_->vocab_size); }

inline bool tokenizer::is_special(std::int32_t id) const {
  const std::string* content = content_of(id);
  return content != nullptr && state_->added.special_contents.contains(*content);
}

} // namespace prefopt::data
