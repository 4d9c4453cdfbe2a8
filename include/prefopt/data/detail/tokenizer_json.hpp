// prefopt/data/detail/tokenizer_json.hpp — reading Hugging Face tokenizer.json into a tokenizer_state.
//
// Supported (anything else is a format_error naming the source and the JSON path, e.g.
// "tokenizer.json: field 'model.type'"):
//   normalizer       null | NFC | Sequence{normalizers}
//   pre_tokenizer    null | ByteLevel{add_prefix_space, use_regex} | Split{pattern {Regex|String},
//                    behavior, invert} | Digits{individual_digits} | Sequence{pretokenizers}
//   model            BPE{vocab, merges ("a b" strings or ["a", "b"] pairs), ignore_merges,
//                    unk_token, fuse_unk}; dropout must be null or 0, byte_fallback false,
//                    continuing_subword_prefix / end_of_word_suffix null or ""
//   post_processor   null | ByteLevel | TemplateProcessing{single, special_tokens} | Sequence{processors}
//   decoder          null | ByteLevel | Sequence{decoders}
//   added_tokens     [{id, content, single_word, lstrip, rstrip, normalized, special}]
// "truncation" and "padding" are ignored: truncating and padding are the collator's job.
#pragma once

#include <prefopt/core/error.hpp>
#include <prefopt/data/detail/tokenizer_pipeline.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace prefopt::data::detail {

class tokenizer_json_reader {
public:
  using json = nlohmann::json;
  explicit tokenizer_json_reader(std::string source) : source_(std::move(source)) {}

  std::shared_ptr<tokenizer_state> read(const json& j);

private:
  std::string source_;

  [[noreturn]] void fail(const std::string& path, const std::string& why) const {
    throw format_error(where_in(source_, 0, path), why);
  }
  static std::string path_of(const std::string& parent, const std::string& key) {
    return parent.empty() ? key : parent + "." + key;
  }
  static std::string index_of(const std::string& parent, std::size_t i) { return parent + "[" + std::to_string(i) + "]"; }

  const json& object(const json& j, const std::string& path) const {
    if (!j.is_object()) fail(path, "expected a JSON object, found " + std::string(j.type_name()));
    return j;
  }
  const json& array(const json& j, const std::string& path) const {
    if (!j.is_array()) fail(path, "expected a JSON array, found " + std::string(j.type_name()));
    return j;
  }
  // A member that must exist.
  const json& member(const json& obj, const std::string& path, const char* key) const {
    const auto it = obj.find(key);
    if (it == obj.end()) fail(path_of(path, key), "missing field");
    return *it;
  }
  // A member that may be absent or null.
  const json* optional_member(const json& obj, const char* key) const {
    const auto it = obj.find(key);
    return (it == obj.end() || it->is_null()) ? nullptr : &*it;
  }
  std::string string_at(const json& j, const std::string& path) const {
    if (!j.is_string()) fail(path, "expected a string, found " + std::string(j.type_name()));
    return j.get<std::string>();
  }
  std::string string_member(const json& obj, const std::string& path, const char* key) const {
    return string_at(member(obj, path, key), path_of(path, key));
  }
  bool bool_member(const json& obj, const std::string& path, const char* key, bool fallback) const {
    const json* v = optional_member(obj, key);
    if (v == nullptr) return fallback;
    if (!v->is_boolean()) fail(path_of(path, key), "expected true or false, found " + std::string(v->type_name()));
    return v->get<bool>();
  }
  std::int32_t id_at(const json& j, const std::string& path) const {
    if (!j.is_number_integer() || j.get<std::int64_t>() < 0 || j.get<std::int64_t>() > std::numeric_limits<std::int32_t>::max())
      fail(path, "expected a token id (an integer from 0 to 2^31-1)");
    return static_cast<std::int32_t>(j.get<std::int64_t>());
  }
  std::string type_of(const json& obj, const std::string& path) const { return string_member(object(obj, path), path, "type"); }

  void read_normalizer(const json& j, const std::string& path, tokenizer_state& st) const {
    const std::string type = type_of(j, path);
    if (type == "Sequence") {
      const auto& list = array(member(j, path, "normalizers"), path_of(path, "normalizers"));
      for (std::size_t i = 0; i < list.size(); ++i) read_normalizer(list[i], index_of(path_of(path, "normalizers"), i), st);
    } else if (type == "NFC") {
      st.normalizers.push_back(normalizer_step::nfc);
    } else {
      fail(path_of(path, "type"), "unsupported normalizer '" + type + "' (supported: NFC, Sequence)");
    }
  }

  void read_pre_tokenizer(const json& j, const std::string& path, tokenizer_state& st) const {
    const std::string type = type_of(j, path);
    if (type == "Sequence") {
      const auto& list = array(member(j, path, "pretokenizers"), path_of(path, "pretokenizers"));
      for (std::size_t i = 0; i < list.size(); ++i) read_pre_tokenizer(list[i], index_of(path_of(path, "pretokenizers"), i), st);
    } else if (type == "ByteLevel") {
      byte_level_step s;
      s.add_prefix_space = bool_member(j, path, "add_prefix_space", true);
      if (bool_member(j, path, "use_regex", true)) s.gpt2 = regex::compile(gpt2_pattern, source_);
      st.pre_tokenizers.emplace_back(std::move(s));
    } else if (type == "Split") {
      st.pre_tokenizers.emplace_back(read_split(j, path));
    } else if (type == "Digits") { // numeric characters (Rust's char::is_numeric = \p{N}), one by one or in runs
      const bool individual = bool_member(j, path, "individual_digits", false);
      st.pre_tokenizers.emplace_back(split_step{regex::compile(R"(\p{N})", source_),
                                                individual ? split_behavior::isolated : split_behavior::contiguous, false});
    } else {
      fail(path_of(path, "type"), "unsupported pre_tokenizer '" + type + "' (supported: ByteLevel, Split, Digits, Sequence)");
    }
  }

  split_step read_split(const json& j, const std::string& path) const {
    const std::string ppath = path_of(path, "pattern");
    const json& pattern = object(member(j, path, "pattern"), ppath);
    std::string regex_text;
    if (const auto it = pattern.find("Regex"); it != pattern.end()) {
      regex_text = string_at(*it, path_of(ppath, "Regex"));
    } else if (const auto is = pattern.find("String"); is != pattern.end()) {
      for (char32_t c : decode(string_at(*is, path_of(ppath, "String")))) { // a literal: escape everything
        if (c < 0x80 && ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'))) regex_text += static_cast<char>(c);
        else regex_text += "\\x{" + hex(c) + "}";
      }
    } else {
      fail(ppath, "expected {\"Regex\": ...} or {\"String\": ...}");
    }
    split_step s{regex::compile(regex_text, where_in(source_, 0, ppath)), split_behavior::isolated, false};
    const std::string behavior = string_member(j, path, "behavior");
    if (behavior == "Removed") s.behavior = split_behavior::removed;
    else if (behavior == "Isolated") s.behavior = split_behavior::isolated;
    else if (behavior == "MergedWithPrevious") s.behavior = split_behavior::merged_with_previous;
    else if (behavior == "MergedWithNext") s.behavior = split_behavior::merged_with_next;
    else if (behavior == "Contiguous") s.behavior = split_behavior::contiguous;
    else fail(path_of(path, "behavior"), "unknown split behavior '" + behavior + "'");
    s.invert = bool_member(j, path, "invert", false);
    return s;
  }

  static std::vector<char32_t> decode(const std::string& s) {
    std::vector<char32_t> cps;
    unicode::decode_utf8(s, cps, nullptr);
    return cps;
  }
  static std::string hex(char32_t c) {
    static constexpr char digits[] = "0123456789ABCDEF";
    std::string h;
    do {
      h.insert(h.begin(), digits[c & 0xF]);
      c >>= 4;
    } while (c != 0);
    return h;
  }

  void read_model(const json& j, tokenizer_state& st) const;
  void read_added_tokens(const json& j, tokenizer_state& st) const;
  void read_post_processor(const json& j, const std::string& path, tokenizer_state& st) const;
  void read_decoder(const json& j, const std::string& path, tokenizer_state& st) const;
};

} // namespace prefopt::data::detail

#include <prefopt/data/detail/tokenizer_json_impl.hpp>
