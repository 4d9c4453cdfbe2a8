// prefopt/data/chat_template.hpp — built-in chat templates and TRL's rendering of conversational pairs.
//
// Each built-in template renders exactly what transformers' apply_chat_template(..., tokenize=False)
// renders with the model's real Jinja template (the tests compare against that, for ~50
// conversations). The templates, with c = a message's content:
//   chatml      "<|im_start|>" role "\n" c "<|im_end|>\n" per message; generation prompt
//               "<|im_start|>assistant\n". With default_system set, a conversation whose first
//               message is not a system message gets "<|im_start|>system\n" default_system
//               "<|im_end|>\n" first: Qwen2-Instruct's template does this with "You are a helpful
//               assistant." (qwen2_template()).
//   qwen2.5     Qwen2.5-Instruct's template without tools: chatml with the default system message
//               "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.", except that
//               a run of consecutive tool messages becomes one user turn,
//               "<|im_start|>user" then "\n<tool_response>\n" c "\n</tool_response>" per message,
//               then "<|im_end|>\n".
//   llama3      Meta-Llama-3-Instruct's: bos_token (<|begin_of_text|>) once, then per message
//               "<|start_header_id|>" role "<|end_header_id|>\n\n" trim(c) "<|eot_id|>", where trim
//               strips Python's whitespace (str.strip, as Jinja's trim filter does); generation
//               prompt "<|start_header_id|>assistant<|end_header_id|>\n\n".
//   jinja       any other template: the model's own Jinja text, rendered by prefopt's Jinja2-subset
//               interpreter (data/jinja/template.hpp) exactly as transformers renders it, with the
//               special tokens of its tokenizer_config.json (bos_token, eos_token, unk_token,
//               sep_token, pad_token, cls_token, mask_token: those set) as variables. A template that
//               raises (raise_exception, an undefined value) is a data_error naming its line.
//   gpt2-plain  for base models without a template: the contents alone, roles dropped, joined by
//               `separator` ("\n\n" by default); the generation prompt is one more separator, so a
//               completion starts right after it. It has no end-of-turn marker: to_text() appends
//               the EOS token to its completions, as TRL does for standard (string) datasets.
//
// render_pair follows TRL's maybe_apply_chat_template: the prompt is rendered with the generation
// prompt when its last message is from the user or a tool, or continued (continue_final_message:
// no end-of-turn after it) when it is from the assistant; prompt+chosen and prompt+rejected are
// rendered whole; the prompt is cut back to its longest common prefix (in characters) with both,
// and chosen/rejected are what follows that prefix. So a completion ends with the template's own
// end of turn ("<|im_end|>\n" for ChatML — the newline included —, "<|eot_id|>" for Llama-3) and
// no EOS token is added; TRL's DPOTrainer does not add one to conversational data either.
#pragma once

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <prefopt/core/error.hpp>
#include <prefopt/data/formats.hpp>
#include <prefopt/data/jinja/template.hpp>

#include <memory>

namespace prefopt::data {

enum class chat_template_kind { chatml, qwen2_5, llama3, gpt2_plain, jinja };

struct chat_template {
  chat_template_kind kind = chat_template_kind::chatml;
  std::optional<std::string> default_system{};  // chatml only
  std::string bos_token{};                      // llama3 only
  std::string separator = "\n\n";               // gpt2_plain only
  std::shared_ptr<const jinja::program> program{};  // jinja only: the compiled template
  nlohmann::json variables = nlohmann::json::object();  // jinja only: what it sees besides messages

  // "chatml", "qwen2.5", "llama3", "gpt2-plain" or "jinja".
  [[nodiscard]] std::string_view name() const noexcept {
    constexpr std::string_view names[] = {"chatml", "qwen2.5", "llama3", "gpt2-plain", "jinja"};
    return names[static_cast<int>(kind)];
  }
  friend bool operator==(const chat_template&, const chat_template&) = default;
};

inline constexpr std::string_view qwen2_default_system = "You are a helpful assistant.";
inline constexpr std::string_view qwen2_5_default_system =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

[[nodiscard]] inline chat_template chatml_template(std::optional<std::string> default_system = std::nullopt) {
  return {.kind = chat_template_kind::chatml, .default_system = std::move(default_system)};
}
[[nodiscard]] inline chat_template qwen2_template() { return chatml_template(std::string(qwen2_default_system)); }
[[nodiscard]] inline chat_template qwen2_5_template() {
  return {.kind = chat_template_kind::qwen2_5, .default_system = std::string(qwen2_5_default_system)};
}
[[nodiscard]] inline chat_template llama3_template(std::string bos_token = "<|begin_of_text|>") {
  return {.kind = chat_template_kind::llama3, .bos_token = std::move(bos_token)};
}
[[nodiscard]] inline chat_template gpt2_plain_template(std::string separator = "\n\n") {
  return {.kind = chat_template_kind::gpt2_plain, .separator = std::move(separator)};
}

// "chatml", "qwen2" (chatml with Qwen2's default system message), "qwen2.5", "llama3",
// "gpt2-plain"; config_error listing them for any other name.
[[nodiscard]] inline chat_template chat_template_by_name(std::string_view name);

// A Jinja chat template (kind jinja). The special tokens it sees come from `tokenizer_config`
// (a tokenizer_config.json object; may be empty); `name` names the template in errors
// ("tokenizer_config.json: field 'chat_template'"). jinja::template_error (a config_error) naming
// the line when the text does not parse or uses a construct prefopt does not support.
[[nodiscard]] inline chat_template jinja_template(std::string_view text,
                                                  const nlohmann::json& tokenizer_config = nlohmann::json::object(),
                                                  std::string name = "chat template");


// The conversation rendered as apply_chat_template(messages, tools=tools, tokenize=False,
// add_generation_prompt, continue_final_message) renders it (both flags together are a config_error,
// as there). A Jinja template sees each message as its JSON (message::as_json(), with transformers'
// reasoning aliases: the first non-null of reasoning_content, thinking, reasoning is copied to
// both reasoning_content and thinking) and `tools` (null: none). The built-in chatml, qwen2.5 and
// llama3 renderers read role and content only; a conversation with other message keys or with
// tools goes through the genuine Jinja text of the same template instead. gpt2-plain reads the
// contents alone (a content list's text parts; any other part is a data_error).
// `kwargs` (a record's chat_template_kwargs: an object, or null) adds template variables after the
// special tokens, replacing one of the same name, as apply_chat_template(..., **kwargs) does; a
// built-in given kwargs renders its genuine Jinja text too. A content list reaches the template as
// a list; with continue_final_message its last part that has a "text" key is continued, as in
// transformers.
[[nodiscard]] inline std::string render(const chat_template& t, std::span<const message> messages,
                                        bool add_generation_prompt = false, bool continue_final_message = false,
                                        const nlohmann::ordered_json& tools = nullptr,
                                        const nlohmann::ordered_json& kwargs = nullptr);

struct rendered_pair {
  std::string prompt, chosen, rejected;
};
struct rendered_unpaired {
  std::string prompt, completion;
};

// TRL's maybe_apply_chat_template for a preference pair / an unpaired example (see above).
// data_error at `where` when the prompt is empty or ends with a system message.
// `tools` as render() takes it (a record's tools column); an empty list counts as none, as
// maybe_apply_chat_template's `tools or None` has it (TRL's DPOTrainer tokenization, collate.hpp,
// passes [] on as [], and so does tokenize_pair).
[[nodiscard]] inline rendered_pair render_pair(const chat_template& t, const messages& prompt, const messages& chosen,
                                               const messages& rejected, const std::string& where = {},
                                               const nlohmann::ordered_json& tools = nullptr,
                                               const nlohmann::ordered_json& kwargs = nullptr);
[[nodiscard]] inline rendered_unpaired render_unpaired(const chat_template& t, const messages& prompt,
                                                       const messages& completion, const std::string& where = {},
                                                       const nlohmann::ordered_json& tools = nullptr,
                                                       const nlohmann::ordered_json& kwargs = nullptr);

// A record as the text the tokenizer sees. Message lists go through render_pair/render_unpaired;
// strings are kept, and, as TRL's DPOTrainer/KTOTrainer do, each completion gets `eos_token`
// appended unless it already ends with it — as do completions rendered by gpt2-plain.
[[nodiscard]] inline rendered_pair to_text(const preference_record& r, const chat_template& t,
                                           std::string_view eos_token, const std::string& where = {});
[[nodiscard]] inline rendered_unpaired to_text(const unpaired_record& r, const chat_template& t,
                                               std::string_view eos_token, const std::string& where = {});

enum class if_no_template {
  error,       // config_error asking the user to choose a template
  gpt2_plain,  // fall back to gpt2_plain_template()
};

// Picks the template of a model: tokenizer_config.json's
// "chat_template" (a string, or a list of {name, template} of which "default" is taken), or, when
// given a path and the key is absent, the chat_template.jinja file next to it. Templates are
// compared after normalising what does not change their output (whitespace inside tags, Jinja's
// whitespace control with transformers' trim_blocks/lstrip_blocks, quote style, x['k'] vs x.k).
// Recognised: Qwen2-Instruct's and any ChatML template of the same shape with another default
// system message (SmolLM2's, say), plain ChatML (TRL's setup_chat_format), Qwen2.5-Instruct's and
// Meta-Llama-3-Instruct's (bos_token read from the config). Any other template is kind jinja:
// its text rendered by the interpreter (jinja_template); a template_error if it does not parse.
[[nodiscard]] inline chat_template select_chat_template(const nlohmann::json& tokenizer_config,
                                                        const std::string& where = "tokenizer_config.json",
                                                        if_no_template missing = if_no_template::error);
[[nodiscard]] inline chat_template select_chat_template(const std::filesystem::path& tokenizer_config_json,
                                                        if_no_template missing = if_no_template::error);

// The template a config's or the command line's `chat_template` setting names: "auto" (the
// model's own, select_chat_template), a built-in name, the name of one of tokenizer_config.json's
// named templates ({name, template} list), or the path of a .jinja file (read, and rendered with
// tokenizer_config's special tokens). `where` names tokenizer_config for errors.
[[nodiscard]] inline chat_template chat_template_from_setting(const std::string& setting,
                                                              const nlohmann::json& tokenizer_config,
                                                              const std::string& where = "tokenizer_config.json",
                                                              if_no_template missing = if_no_template::error);

// A special token of tokenizer_config.json ("eos_token", "bos_token", ...), written either as a
// string or as an AddedToken object {"content": ...}; nullopt when absent or null.
[[nodiscard]] inline std::optional<std::string> config_special_token(const nlohmann::json& tokenizer_config,
                                                                     const std::string& key);

} // namespace prefopt::data

#include <prefopt/data/chat_template_impl.hpp>
