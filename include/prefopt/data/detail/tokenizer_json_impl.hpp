// prefopt/data/detail/tokenizer_json_impl.hpp — model, added tokens, post-processor and decoder sections.
#pragma once

#include <prefopt/data/detail/tokenizer_json.hpp>
#include <prefopt/core/json.hpp>

#include <algorithm>

namespace prefopt::data::detail {

inline std::shared_ptr<tokenizer_state> tokenizer_json_reader::read(const json& j) {
  object(j, "");
  auto st = std::make_shared<tokenizer_state>();
  st->source = source_;
  if (const json* n = optional_member(j, "normalizer")) read_normalizer(*n, "normalizer", *st);
  if (const json* p = optional_member(j, "pre_tokenizer")) read_pre_tokenizer(*p, "pre_tokenizer", *st);
  const auto it = j.find("model");
  if (it == j.end() || it->is_null()) fail("model", "missing field (a BPE model is required)");
  read_model(*it, *st);
  if (const json* a = optional_member(j, "added_tokens")) read_added_tokens(*a, *st);
  if (const json* p = optional_member(j, "post_processor")) read_post_processor(*p, "post_processor", *st);
  if (const json* d = optional_member(j, "decoder")) {
    st->has_decoder = true;
    read_decoder(*d, "decoder", *st);
  }
  std::int64_t max_id = -1;
  for (const auto& [tok, id] : st->model.vocab) max_id = std::max<std::int64_t>(max_id, id);
  for (const auto& [id, tok] : st->added.tokens) max_id = std::max<std::int64_t>(max_id, id);
  st->vocab_size = static_cast<std::int32_t>(max_id + 1);
  return st;
}

inline void tokenizer_json_reader::read_model(const json& j, tokenizer_state& st) const {
  const std::string path = "model";
  const std::string type = type_of(j, path);
  if (type != "BPE") fail("model.type", "unsupported model type '" + type + "' (only BPE is supported)");
  bpe_model& m = st.model;

  if (const json* d = optional_member(j, "dropout"); d != nullptr && !(d->is_number() && d->get<double>() == 0.0))
    fail("model.dropout", "BPE dropout is not supported (must be null or 0)");
  if (bool_member(j, path, "byte_fallback", false)) fail("model.byte_fallback", "byte_fallback = true is not supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (const json* v = optional_member(j, key); v != nullptr && string_at(*v, path_of(path, key)) != "")
      fail(path_of(path, key), "only null or \"\" is supported");
  m.ignore_merges = bool_member(j, path, "ignore_merges", false);
  m.fuse_unk = bool_member(j, path, "fuse_unk", false);

  const json& vocab = object(member(j, path, "vocab"), "model.vocab");
  m.vocab.reserve(vocab.size());
  for (const auto& [tok, id] : vocab.items()) {
    const std::int32_t v = id_at(id, "model.vocab[\"" + tok + "\"]");
    m.vocab.emplace(tok, v);
    m.vocab_r.emplace(v, tok);
  }
  if (const json* u = optional_member(j, "unk_token")) {
    const std::string unk = string_at(*u, "model.unk_token");
    const auto it = m.vocab.find(unk);
    if (it == m.vocab.end()) fail("model.unk_token", "unknown token '" + unk + "' is not in the vocabulary");
    m.unk_id = it->second;
  }

  const json& merges = array(member(j, path, "merges"), "model.merges");
  m.merges.reserve(merges.size());
  for (std::size_t i = 0; i < merges.size(); ++i) {
    const std::string mpath = index_of("model.merges", i);
    const json& e = merges[i];
    std::string a, b;
    if (e.is_string()) {
      const std::string s = e.get<std::string>();
      const auto sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        fail(mpath, "expected two tokens separated by one space, found \"" + s + "\"");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      fail(mpath, "expected \"a b\" or [\"a\", \"b\"], found " + json_excerpt(e));
    }
    auto id_of = [&](const std::string& t) {
      const auto it = m.vocab.find(t);
      if (it == m.vocab.end()) fail(mpath, "token '" + t + "' is not in the vocabulary");
      return it->second;
    };
    const std::int32_t ia = id_of(a), ib = id_of(b), merged = id_of(a + b);
    m.merges.insert_or_assign(bpe_model::pair_key(ia, ib), bpe_model::merge_value{static_cast<std::uint32_t>(i), merged});
  }
  m.index_characters();
}

inline void tokenizer_json_reader::read_added_tokens(const json& j, tokenizer_state& st) const {
  const auto& list = array(j, "added_tokens");
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string path = index_of("added_tokens", i);
    const json& e = object(list[i], path);
    id_at(member(e, path, "id"), path_of(path, "id"));
    added_token t;
    t.content = string_member(e, path, "content");
    t.special = bool_member(e, path, "special", false);
    t.single_word = bool_member(e, path, "single_word", false);
    t.lstrip = bool_member(e, path, "lstrip", false);
    t.rstrip = bool_member(e, path, "rstrip", false);
    t.normalized = bool_member(e, path, "normalized", !t.special);
    st.added.add(t, st.model, [&](const std::string& s) { return st.normalize(s); });
  }
  st.added.build_matchers(st.model, [&](const std::string& s) { return st.normalize(s); });
}

inline void tokenizer_json_reader::read_post_processor(const json& j, const std::string& path, tokenizer_state& st) const {
  const std::string type = type_of(j, path);
  if (type == "Sequence") {
    const std::string lpath = path_of(path, "processors");
    const auto& list = array(member(j, path, "processors"), lpath);
    for (std::size_t i = 0; i < list.size(); ++i) read_post_processor(list[i], index_of(lpath, i), st);
  } else if (type == "ByteLevel") {
    st.post_processors.emplace_back(byte_level_post_step{});
  } else if (type == "TemplateProcessing") {
    const std::string spath = path_of(path, "special_tokens");
    const json& specials = object(member(j, path, "special_tokens"), spath);
    const std::string tpath = path_of(path, "single");
    const auto& single = array(member(j, path, "single"), tpath);
    template_step t;
    for (std::size_t i = 0; i < single.size(); ++i) {
      const std::string ipath = index_of(tpath, i);
      const json& piece = object(single[i], ipath);
      template_piece out;
      if (const auto s = piece.find("Sequence"); s != piece.end()) {
        const std::string id = string_member(object(*s, path_of(ipath, "Sequence")), path_of(ipath, "Sequence"), "id");
        if (id != "A") fail(path_of(ipath, "Sequence.id"), "a single-sequence template can only use $A, found $" + id);
        out.is_sequence = true;
      } else if (const auto k = piece.find("SpecialToken"); k != piece.end()) {
        const std::string kpath = path_of(ipath, "SpecialToken");
        const std::string id = string_member(object(*k, kpath), kpath, "id");
        const auto entry = specials.find(id);
        if (entry == specials.end()) fail(spath, "template token '" + id + "' has no entry");
        const std::string epath = path_of(spath, id);
        const auto& ids = array(member(object(*entry, epath), epath, "ids"), path_of(epath, "ids"));
        for (std::size_t n = 0; n < ids.size(); ++n) out.ids.push_back(id_at(ids[n], index_of(path_of(epath, "ids"), n)));
      } else {
        fail(ipath, "expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
      }
      t.single.push_back(std::move(out));
    }
    st.post_processors.emplace_back(std::move(t));
  } else {
    fail(path_of(path, "type"),
         "unsupported post_processor '" + type + "' (supported: TemplateProcessing, ByteLevel, Sequence)");
  }
}

inline void tokenizer_json_reader::read_decoder(const json& j, const std::string& path, tokenizer_state& st) const {
  const std::string type = type_of(j, path);
  if (type == "Sequence") {
    const std::string lpath = path_of(path, "decoders");
    const auto& list = array(member(j, path, "decoders"), lpath);
    for (std::size_t i = 0; i < list.size(); ++i) read_decoder(list[i], index_of(lpath, i), st);
  } else if (type == "ByteLevel") {
    st.decoders.push_back(decoder_step::byte_level);
  } else {
    fail(path_of(path, "type"), "unsupported decoder '" + type + "' (supported: ByteLevel, Sequence)");
  }
}

} // namespace prefopt::data::detail
