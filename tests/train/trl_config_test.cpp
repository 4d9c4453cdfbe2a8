// train/trl_config.hpp: a TRL config (DPOConfig, TrainingArguments, ModelConfig, ScriptArguments
// names) read onto run_config, from JSON and from YAML (io/yaml.hpp): every mapped field lands on
// its prefopt option, each converted field's rule, ignored and restricted fields, unknown keys and
// mixed styles named in the error (with the line for YAML), and the docs table equal to the header's.
#include <doctest/doctest.h>

#include <limits>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>

#include "prefopt/io/yaml.hpp"
#include "prefopt/train/trl_config.hpp"
#include "support/data.hpp"

namespace {
using namespace prefopt;
using nlohmann::json;

train::run_config read(const json& j, const train::trl::line_map* lines = nullptr) {
  train::run_config c = train::default_run_config();
  train::trl::apply_trl_config(j, c, "run.yaml", lines);
  return c;
}
train::run_config read_yaml(const std::string& text) {
  const auto doc = io::read_yaml(text, "run.yaml");
  return read(doc.value, &doc.lines);
}
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const config_error& e) {
    return e.what();
  }
  return "(no error)";
}
// The value at a prefopt path ("optimizer.learning_rate") of cfg, as JSON.
json at(const train::run_config& c, const std::string& path) {
  json j = reflect::to_json(c);
  std::string p = "/" + path;
  std::replace(p.begin(), p.end(), '.', '/');
  return j.at(json::json_pointer(p));
}
} // namespace

TEST_CASE("every mapped TRL field lands on its prefopt option, from JSON and from YAML") {
  // One value per mapped field, unlike prefopt's default, so a field that went nowhere fails.
  const std::map<std::string, json> values = {
      {"model_name_or_path", "models/gpt2"}, {"beta", 0.25}, {"label_smoothing", 0.125}, {"f_divergence_type", "js_divergence"},
      {"f_alpha_divergence_coef", 0.75}, {"use_weighting", true}, {"discopop_tau", 0.5}, {"ld_alpha", 0.5},
      {"ref_model_mixup_alpha", 0.25}, {"ref_model_sync_steps", 64}, {"disable_dropout", false}, {"max_length", 77},
      {"truncation_mode", "keep_end"}, {"max_prompt_length", 33}, {"max_completion_length", 44}, {"learning_rate", 5e-5},
      {"weight_decay", 0.01}, {"adam_beta1", 0.8}, {"adam_beta2", 0.99}, {"adam_epsilon", 1e-6}, {"max_grad_norm", 0.5},
      {"lr_scheduler_type", "cosine"}, {"warmup_ratio", 0.1}, {"per_device_train_batch_size", 2},
      {"gradient_accumulation_steps", 4}, {"num_train_epochs", 2}, {"max_steps", 9}, {"seed", 7},
      {"gradient_checkpointing", true}, {"output_dir", "out"}, {"overwrite_output_dir", true}, {"logging_steps", 3},
      {"eval_steps", 5}, {"save_steps", 6}, {"save_total_limit", 2}};
  for (const auto& f : train::trl::fields) {
    if (f.kind != train::trl::mapped) continue;
    const std::string name(f.name), target(f.target.substr(0, f.target.find(' ')));
    CAPTURE(name);
    REQUIRE_MESSAGE(values.count(name), "the test has no value for mapped field " << name);
    const json v = values.at(name);
    CHECK(at(read(json{{name, v}}), target) == v);
    CHECK(at(read_yaml(name + ": " + v.dump() + "\n"), target) == v);  // JSON scalars are YAML
  }
}

TEST_CASE("TRL's defaults where they differ from prefopt's, and the style detection") {
  const auto c = read(json{{"beta", 0.1}});
  CHECK(c.training.num_train_epochs == 3);
  CHECK(c.training.save_steps == 500);
  CHECK(c.output.dir == "trainer_output");
  CHECK(c.data.truncation_mode == "keep_start");
  CHECK(train::default_run_config().data.truncation_mode == "keep_prompt_end");
  CHECK(train::trl::is_trl_config(json{{"learning_rate", 1e-6}}));
  CHECK_FALSE(train::trl::is_trl_config(json{{"optimizer", {{"learning_rate", 1e-6}}}}));
  CHECK_FALSE(train::trl::is_trl_config(json::object()));
  CHECK_FALSE(train::trl::is_trl_config(json::array()));
  const auto mixed = error_of([] { read(json{{"learning_rate", 1e-6}, {"optimizer", {{"type", "sgd"}}}}); });
  CHECK(mixed.find("field 'optimizer'") != std::string::npos);
  CHECK(mixed.find("one of prefopt's sections") != std::string::npos);
  CHECK(mixed.find("'learning_rate'") != std::string::npos);
  const auto unknown = error_of([] { read(json{{"learning_rate", 1e-6}, {"learnign_rate", 1e-5}}); });
  CHECK(unknown.find("field 'learnign_rate'") != std::string::npos);
  CHECK(unknown.find("is not a TRL") != std::string::npos);
}

TEST_CASE("converted fields") {
  CHECK(read(json{{"loss_type", "ipo"}}).loss.type == std::vector<std::string>{"ipo"});
  CHECK(read(json{{"loss_type", {"sigmoid", "sft"}}, {"loss_weights", {0.8, 0.2}}}).loss.weights == std::vector<double>{0.8, 0.2});
  CHECK(read(json{{"loss_weights", nullptr}}).loss.weights.empty());
  CHECK(read(json{{"optim", "adamw_torch"}}).optimizer.type == "adamw");
  CHECK(read(json{{"optim", "sgd"}}).optimizer.type == "sgd");
  CHECK(error_of([] { read(json{{"optim", "adafactor"}}); }).find("field 'optim'") != std::string::npos);
  const auto w = read(json{{"warmup_steps", 0.1}});
  CHECK(w.optimizer.warmup_ratio == 0.1);
  CHECK(w.optimizer.warmup_steps == 0);
  CHECK(read(json{{"warmup_steps", 12}}).optimizer.warmup_steps == 12);
  CHECK(read(json{{"pad_to_multiple_of", "auto"}}).data.pad_to_multiple_of == 0);
  CHECK(read(json{{"pad_to_multiple_of", 8}}).data.pad_to_multiple_of == 8);
  CHECK(read(json{{"precompute_ref_log_probs", true}}).reference.strategy == "precomputed");
  CHECK(read(json{{"precompute_ref_log_probs", false}}).reference.strategy == "auto");
  CHECK(read(json{{"precompute_ref_batch_size", 16}}).reference.precompute_batch_size == 16);
  CHECK(read(json{{"precompute_ref_batch_size", nullptr}}).reference.precompute_batch_size == 0);
  CHECK(read(json{{"sync_ref_model", true}}).reference.strategy == "synced");
  CHECK(read(json{{"reference_free", true}}).reference.strategy == "none");
  CHECK(error_of([] { read(json{{"sync_ref_model", true}, {"precompute_ref_log_probs", true}}); }).find("one reference strategy") !=
        std::string::npos);
  CHECK(read(json{{"resume_from_checkpoint", true}}).training.resume);
  CHECK(error_of([] { read(json{{"resume_from_checkpoint", "out/checkpoint-5"}}); }).find("field 'resume_from_checkpoint'") !=
        std::string::npos);
  CHECK(read(json{{"save_strategy", "no"}, {"save_steps", 10}}).training.save_steps == 0);
  CHECK(error_of([] { read(json{{"save_strategy", "epoch"}}); }).find("field 'save_strategy'") != std::string::npos);
  CHECK(read(json{{"dataset_name", "data/pairs.jsonl"}}).data.train == "data/pairs.jsonl");
  CHECK(error_of([] { read(json{{"dataset_name", "trl-lib/ultrafeedback_binarized"}}); }).find("hub dataset") != std::string::npos);
  // rpo_alpha: an sft term with that weight
  const auto rpo = read(json{{"loss_type", "sigmoid"}, {"rpo_alpha", 0.5}});
  CHECK(rpo.loss.type == std::vector<std::string>{"sigmoid", "sft"});
  CHECK(rpo.loss.weights == std::vector<double>{1.0, 0.5});
  CHECK(read(json{{"rpo_alpha", nullptr}}).loss.type == std::vector<std::string>{"sigmoid"});
  // LoRA only with use_peft, from ModelConfig's defaults
  CHECK_FALSE(read(json{{"lora_r", 4}}).lora.has_value());
  const auto peft = read(json{{"use_peft", true}, {"lora_r", 4}, {"lora_target_modules", {"c_attn"}}, {"use_rslora", true}});
  REQUIRE(peft.lora.has_value());
  CHECK(peft.lora->r == 4);
  CHECK(peft.lora->alpha == 32.0);
  CHECK(peft.lora->dropout == 0.05);
  CHECK(peft.lora->use_rslora);
  CHECK(peft.lora->target_modules == std::vector<std::string>{"c_attn"});
  CHECK(read(json{{"use_peft", true}, {"lora_alpha", 8}, {"lora_dropout", 0.0}, {"lora_target_modules", nullptr}})
            .lora->target_modules.empty());
  CHECK(error_of([] { read(json{{"use_peft", true}, {"lora_target_modules", "all-linear"}}); }).find("all-linear") != std::string::npos);
}

TEST_CASE("ignored fields take any value; restricted ones only their accepted values") {
  for (const auto& f : train::trl::fields) {
    const std::string name(f.name);
    CAPTURE(name);
    if (f.kind == train::trl::ignored) {
      CHECK_NOTHROW(read(json{{name, "anything"}}));
      CHECK_NOTHROW(read(json{{name, 3}}));
    } else if (f.kind == train::trl::restricted) {
      for (const auto& v : train::trl::detail::accepted_values(f)) CHECK_NOTHROW(read(json{{name, v}}));
      const auto e = error_of([&] { read(json{{name, "surely-not-accepted"}}); });
      CHECK(e.find("field '" + name + "'") != std::string::npos);
      CHECK(e.find("is not supported") != std::string::npos);
    }
  }
  CHECK(read(json{{"bf16", true}}).training.precision == "bf16");
  CHECK(read(json{{"bf16", false}}).training.precision == "fp32");
  CHECK(read(json{{"bf16", nullptr}}).training.precision == "fp32");
  CHECK(error_of([] { read(json{{"bf16", "yes please"}}); }).find("field 'bf16'") != std::string::npos);
}

TEST_CASE("wrong types name TRL's key; text that is a number is taken as TRL's parser takes it") {
  const auto e = error_of([] { read(json{{"learning_rate", "fast"}}); });
  CHECK(e.find("field 'learning_rate'") != std::string::npos);
  CHECK(e.find("optimizer.learning_rate") != std::string::npos);
  CHECK(read(json{{"learning_rate", "1e-5"}}).optimizer.learning_rate == 1e-5);
  CHECK(read(json{{"num_train_epochs", 2.0}}).training.num_train_epochs == 2);
  CHECK(error_of([] { read(json{{"num_train_epochs", 2.5}}); }).find("field 'num_train_epochs'") != std::string::npos);
}

TEST_CASE("YAML: scalars as PyYAML resolves them, errors with the line") {
  const auto c = read_yaml(
      "# a TRL DPOConfig\n"
      "model_name_or_path: models/gpt2\n"
      "learning_rate: 1e-6\n"
      "per_device_train_batch_size: 4\n"
      "bf16: false\n"
      "max_length: null\n"
      "loss_type: [sigmoid, sft]\n"
      "loss_weights:\n"
      "  - 1.0\n"
      "  - 0.5\n"
      "output_dir: 'out dir'\n"
      "report_to: none\n"
      "use_peft: yes\n"
      "lora_target_modules: [c_attn]\n");
  CHECK(c.model == "models/gpt2");
  CHECK(c.optimizer.learning_rate == 1e-6);
  CHECK(c.training.batch_size == 4);
  CHECK_FALSE(c.data.max_length.has_value());
  CHECK(c.loss.type == std::vector<std::string>{"sigmoid", "sft"});
  CHECK(c.loss.weights == std::vector<double>{1.0, 0.5});
  CHECK(c.output.dir == "out dir");
  REQUIRE(c.lora.has_value());
  CHECK(c.lora->target_modules == std::vector<std::string>{"c_attn"});

  const auto e = error_of([] { read_yaml("beta: 0.1\n\nlearning_rate: fast\n"); });
  CHECK(e.find("run.yaml:3: field 'learning_rate'") != std::string::npos);
  const auto u = error_of([] { read_yaml("beta: 0.1\nbeat: 0.2\n"); });
  CHECK(u.find("run.yaml:2: field 'beat'") != std::string::npos);
  const auto dup = error_of([] { read_yaml("beta: 0.1\nseed: 1\nbeta: 0.2\n"); });
  CHECK(dup.find("run.yaml:3") != std::string::npos);
  CHECK(dup.find("duplicate key (first on line 1)") != std::string::npos);
  CHECK(error_of([] { (void)io::read_yaml("beta: [0.1\n", "run.yaml"); }).find("not valid YAML") != std::string::npos);
  CHECK(error_of([] { (void)io::read_yaml("a: 1\n---\nb: 2\n", "run.yaml"); }).find("more than one YAML document") != std::string::npos);
  // yaml-cpp's LoadAll never returned on this (found by fuzzing: a hang, then out of memory).
  CHECK_THROWS_AS((void)io::read_yaml(",b", "run.yaml"), config_error);
  // Numbers beyond double's range read as Python's float() reads them (found by fuzzing: std::stod
  // threw on 1.0e-26666 and ended the program).
  CHECK(io::read_yaml("a: 1.0e-26666\nb: 1e400\nc: 1000000000000000000000000000000\n", "run.yaml").value ==
        nlohmann::json{{"a", 0.0}, {"b", std::numeric_limits<double>::infinity()}, {"c", 1e30}});
  // A byte that is not UTF-8 is an error at its line (found by fuzzing: it reached a string value
  // that the JSON writer of an error message could not print, and ended the program).
  CHECK(error_of([] { (void)io::read_yaml("model: m\noptimizer:\n  learning_rate: \xa9" "e-6\n", "run.yaml"); })
            .find("run.yaml:3: not valid YAML: a byte that is not UTF-8") != std::string::npos);
  CHECK(error_of([] { (void)io::read_yaml(std::string(300, '[') + std::string(300, ']'), "run.yaml"); }).find("deeper") !=
        std::string::npos);
  // aliases expand; a document that doubles at each level stops at the node limit
  std::string laughs = "a: &a [x, x]\n";
  for (int i = 1; i < 30; ++i)
    laughs += std::string(1, char('a' + i % 26)) + std::to_string(i) + ": &l" + std::to_string(i) + " [" +
              (i == 1 ? std::string("*a, *a") : "*l" + std::to_string(i - 1) + ", *l" + std::to_string(i - 1)) + "]\n";
  CHECK(error_of([&] { (void)io::read_yaml(laughs, "run.yaml"); }).find("values (aliases expanded)") != std::string::npos);
  // scalar resolution
  const auto s = io::read_yaml("a: 1\nb: -2\nc: 0x10\nd: .5\ne: .inf\nf: ~\ng: 'true'\nh: On\ni: 1.5.2\nj: \"3\"\n", "x.yaml").value;
  CHECK(s["a"] == 1);
  CHECK(s["b"] == -2);
  CHECK(s["c"] == 16);
  CHECK(s["d"] == 0.5);
  CHECK(std::isinf(s["e"].get<double>()));
  CHECK(s["f"].is_null());
  CHECK(s["g"] == "true");
  CHECK(s["h"] == true);
  CHECK(s["i"] == "1.5.2");
  CHECK(s["j"] == "3");
  CHECK(io::read_yaml("", "x.yaml").value == json::object());
}

TEST_CASE("docs/training.md holds the table of trl_config.hpp") {
  std::ifstream in(prefopt::test::source_dir() / "docs" / "training.md");
  REQUIRE(in);
  std::stringstream text;
  text << in.rdbuf();
  CHECK_MESSAGE(text.str().find(train::trl::markdown_table()) != std::string::npos,
                "docs/training.md's table differs from train/trl_config.hpp; paste:\n" << train::trl::markdown_table());
}
