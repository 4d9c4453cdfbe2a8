// Fuzz target: chat templates. The input is one JSON object, used twice:
//  - as a tokenizer_config.json: data::select_chat_template (Jinja text matched against the
//    built-in templates after normalisation, any other text compiled by the Jinja interpreter,
//    which jinja_fuzz.cpp covers further) and data::config_special_token;
//  - as a dataset record (standard, conversational, implicit prompt or unpaired): parsed, then
//    rendered as training renders it with every built-in template (data::to_text). For a
//    conversational pair the split must be exact: prompt + chosen renders prompt and chosen whole.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include <nlohmann/json.hpp>

#include "fuzz_support.hpp"
#include "prefopt/data/chat_template.hpp"
#include "prefopt/data/formats.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace prefopt;
  const auto j = nlohmann::json::parse(fuzz::as_text(data, size), nullptr, false);
  if (j.is_discarded()) return 0;  // not JSON: the callers' parse step rejects it (jsonl_collate covers that)

  fuzz::reject_cleanly([&] { (void)data::select_chat_template(j, "tokenizer_config.json", data::if_no_template::gpt2_plain); });
  fuzz::reject_cleanly([&] { (void)data::config_special_token(j, "eos_token"); });

  fuzz::reject_cleanly([&] {
    const auto format = data::detect_format(j, "fuzz.jsonl", 1);
    if (data::is_tokenized(format)) return;
    const data::chat_template templates[] = {data::chatml_template(), data::qwen2_template(), data::qwen2_5_template(),
                                             data::llama3_template(), data::gpt2_plain_template()};
    if (data::is_unpaired(format)) {
      const auto r = data::parse_unpaired_record(j, format, "fuzz.jsonl", 1);
      for (const auto& t : templates) fuzz::reject_cleanly([&] { (void)data::to_text(r, t, "<|endoftext|>"); });
      return;
    }
    const auto r = data::parse_preference_record(j, format, "fuzz.jsonl", 1);
    for (const auto& t : templates) {
      fuzz::reject_cleanly([&] {
        const auto text = data::to_text(r, t, "<|endoftext|>");
        const auto* prompt = std::get_if<data::messages>(&r.prompt);
        if (prompt == nullptr || t.kind == data::chat_template_kind::gpt2_plain) return;
        for (const auto* completion : {&r.chosen, &r.rejected}) {
          auto whole = *prompt;
          const auto& c = std::get<data::messages>(*completion);
          whole.insert(whole.end(), c.begin(), c.end());
          const auto& part = completion == &r.chosen ? text.chosen : text.rejected;
          const auto& tools = r.tools.empty() ? nlohmann::ordered_json() : r.tools;  // render_pair's `tools or None`
          fuzz::check(text.prompt + part == data::render(t, whole, false, false, tools, r.chat_template_kwargs),
                      "prompt + completion renders the whole conversation");
        }
      });
    }
  });
  return 0;
}
