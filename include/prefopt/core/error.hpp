// prefopt/core/error.hpp — the exception hierarchy.
//
// Every error caused by user input (a config value, a dataset line, a model file) is an exception
// derived from prefopt::error that says *where* (file, line, field, tensor name) and *why*.
// prefopt never aborts on user input.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>

namespace prefopt {

class error : public std::runtime_error {
public:
  error(std::string where, std::string why)
      : std::runtime_error(where.empty() ? why : where + ": " + why),
        where_(std::move(where)), why_(std::move(why)) {}

  // The place: "run.json: field 'loss.beta'", "train.jsonl:17: field 'chosen'", "model.safetensors: tensor 'wte.weight'".
  [[nodiscard]] const std::string& where() const noexcept { return where_; }
  // The reason, without the place.
  [[nodiscard]] const std::string& why() const noexcept { return why_; }

private:
  std::string where_;
  std::string why_;
};

// A hyperparameter or configuration value that cannot work (beta <= 0, unknown key, wrong type).
class config_error : public error {
  using error::error;
};

// A dataset record that cannot be used (malformed JSON line, missing field, NaN value).
class data_error : public error {
  using error::error;
};

// A file whose bytes do not follow its format (safetensors, tokenizer.json, checkpoints).
class format_error : public error {
  using error::error;
};

// Tensors or batches whose sizes do not fit together.
class shape_error : public error {
  using error::error;
};

// The operating system refused a read or write.
class io_error : public error {
  using error::error;
};

// "file:line: field 'name'" — the usual place of a data error. Empty parts are left out.
inline std::string where_in(const std::string& file, std::size_t line = 0, const std::string& field = {}) {
  std::string w = file;
  if (line != 0) {
    w += ':';
    w += std::to_string(line);
  }
  if (!field.empty()) w += (w.empty() ? "field '" : ": field '") + field + "'";
  return w;
}

} // namespace prefopt
