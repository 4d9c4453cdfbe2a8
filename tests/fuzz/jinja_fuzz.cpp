// Fuzz target: the Jinja interpreter of chat templates (data/jinja/template.hpp). The input is a
// template's text; it is compiled and rendered over a conversation with a system message, tool
// calls, tool results and a tools list, with and without the generation prompt. Small limits
// (1 MiB of output, 100k loop iterations, macros 16 deep) keep hostile templates — endless loops,
// exponential strings, deep recursion — to milliseconds: each must end in prefopt::error
// (template_error, render_error), never a crash, a hang or another exception.
#include <cstddef>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "fuzz_support.hpp"
#include "prefopt/data/jinja/template.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace prefopt::data;
  static const auto json = nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Weather in Zürich? 👋"},
      {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich"}}}]},
      {"role": "tool", "content": "{\"temp\": 21}"},
      {"role": "assistant", "content": "<think>\nwarm\n</think>\n\nIt is 21 °C."}],
    "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
      "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
    "documents": null, "add_generation_prompt": true,
    "bos_token": "<s>", "eos_token": "</s>"})");
  static const auto with_prompt = jinja::from_json(json);
  static const auto without_prompt = [] {
    auto j = json;
    j["add_generation_prompt"] = false;
    return jinja::from_json(j);
  }();
  const jinja::limits lim{.max_output = std::size_t{1} << 20, .max_iterations = 100'000, .max_depth = 16};
  prefopt::fuzz::reject_cleanly([&] {
    const auto program = jinja::compile(prefopt::fuzz::as_text(data, size), "fuzz.jinja");
    for (const auto* context : {&without_prompt, &with_prompt}) {
      const auto out = jinja::render(program, *context, lim);
      prefopt::fuzz::check(out.size() <= lim.max_output, "output within the limit");
    }
  });
  return 0;
}
