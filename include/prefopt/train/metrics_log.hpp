// prefopt/train/metrics_log.hpp — training metrics as metrics.jsonl + metrics.csv (+ TensorBoard).
//
// Each log(step, values) call is one row, under TRL's metric names (loss, rewards/chosen,
// rewards/rejected, rewards/accuracies, rewards/margins, logps/chosen, entropy, logits/chosen,
// mean_token_accuracy, num_tokens, grad_norm, learning_rate, epoch, eval_loss, ...; their
// definitions: train/token_metrics.hpp and docs/training.md), in the order given:
//   metrics.jsonl  one JSON object per line: {"step": 120, "epoch": 0.5, "loss": 0.6931, ...}
//   metrics.csv    header = every key seen so far in first-seen order, "step" first; a row leaves the
//                  cells of keys it lacks empty. When a row brings a new key the whole file is
//                  rewritten with the wider header (temp file + rename, so a reader never sees half).
// Numbers are written in the shortest form that reads back to the same double ("0.1", "1e-07",
// "3.0"). JSON has no NaN or infinity: a non-finite value is `null` in metrics.jsonl and `nan`,
// `inf` or `-inf` in metrics.csv. Steps never decrease (several rows may share a step, as a
// training row and an evaluation row do).
//
// Resuming: open(dir, true) continues the existing files; truncate_after(step) then drops the rows
// logged after the checkpoint's step, so a run resumed from step 100 that had logged up to 120
// writes 101..120 once. Both files are rewritten atomically. metrics.jsonl is the record of truth;
// metrics.csv supplies the nan/inf/-inf spelling of its null values when its rows match. A last
// line cut short by a crash (no newline, not valid JSON) is dropped and reported by dropped_torn_line().
//
// forward_to(&writer) also sends each row to a tensorboard_writer as one event, tags named as
// Hugging Face's TensorBoardCallback names them: eval_x -> eval/x, test_x -> test/x, x -> train/x.
#pragma once

#include "prefopt/core/error.hpp"
#include "prefopt/core/json.hpp"
#include "prefopt/train/tensorboard.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace prefopt::train {

using metric_values = std::vector<std::pair<std::string, double>>;

namespace detail {
// Metrics a logged row takes from its own step, not as a mean over the window, as the Hugging Face
// Trainer logs them: grad_norm and learning_rate of the last step, num_tokens a running count.
inline bool last_value(const std::string& key) { return key == "grad_norm" || key == "learning_rate" || key == "num_tokens"; }
} // namespace detail

// The TensorBoard tag of a metric, as transformers' rewrite_logs spells it.
[[nodiscard]] inline std::string tensorboard_tag(std::string_view metric) {
  if (metric.starts_with("eval_")) return "eval/" + std::string(metric.substr(5));
  if (metric.starts_with("test_")) return "test/" + std::string(metric.substr(5));
  return "train/" + std::string(metric);
}

namespace detail::metrics {
// Shortest round-trip text of a finite double, as JSON writes it ("0.1", "3.0", "1e-07").
inline std::string number(double v) { return nlohmann::json(v).dump(); }
inline std::string csv_cell(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return number(v);
}
inline std::string csv_quote(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}
// Splits metrics.csv into records of fields (RFC 4180 quoting, as csv_quote writes it).
inline std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string cell;
  bool quoted = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c != '"') cell += c;
      else if (i + 1 < text.size() && text[i + 1] == '"') cell += '"', ++i;
      else quoted = false;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      row.push_back(std::move(cell)), cell.clear();
    } else if (c == '\n') {
      row.push_back(std::move(cell)), cell.clear();
      rows.push_back(std::move(row)), row.clear();
    } else if (c != '\r') {
      cell += c;
    }
  }
  return rows; // an unterminated last record is left out
}
inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw io_error(p.string(), "cannot read the file");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
// Writes text to path through path.tmp + rename.
inline void write_atomically(const std::filesystem::path& path, const std::string& text) {
  const auto tmp = std::filesystem::path(path.string() + ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) throw io_error(tmp.string(), "cannot write the file");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw io_error(path.string(), "cannot replace the file: " + ec.message());
}
} // namespace detail::metrics

class metrics_log {
public:
  // A fresh log in dir (created if needed); existing metrics.jsonl / metrics.csv there are replaced.
  explicit metrics_log(const std::filesystem::path& dir) : metrics_log(dir, false) {}

  // resume = false: as the constructor. resume = true: continue the files in dir (all rows kept;
  // call truncate_after to drop rows past the checkpoint). Throws format_error on a malformed file.
  [[nodiscard]] static metrics_log open(const std::filesystem::path& dir, bool resume) { return metrics_log(dir, resume); }

  // Appends one row. Throws config_error for a reserved, empty or repeated name or a step before the
  // last one, io_error when a file cannot be written.
  void log(std::int64_t step, const metric_values& values) {
    if (!rows_.empty() && step < rows_.back().step)
      throw config_error(jsonl_path().string(), "step " + std::to_string(step) + " comes after step " +
                                                    std::to_string(rows_.back().step) + " (a resumed run calls truncate_after first)");
    row r{step, "{\"step\": " + std::to_string(step), {}};
    for (const auto& [name, value] : values) {
      if (name.empty() || name == "step")
        throw config_error(jsonl_path().string(), "metric name '" + name + "' is reserved or empty");
      for (const auto& [seen, _] : r.cells)
        if (seen == name) throw config_error(jsonl_path().string(), "metric '" + name + "' given twice in one row");
      std::string key;
      try {
        key = nlohmann::json(name).dump();
      } catch (const nlohmann::json::exception& e) {
        throw config_error(jsonl_path().string(), "metric name is not UTF-8: " + std::string(e.what()));
      }
      r.json += ", " + key + ": " + (std::isfinite(value) ? detail::metrics::number(value) : "null");
      r.cells.emplace_back(name, detail::metrics::csv_cell(value));
    }
    r.json += "}";
    const bool wider = add_columns(r);
    rows_.push_back(std::move(r));
    append(jsonl_path(), rows_.back().json + "\n");
    if (wider) detail::metrics::write_atomically(csv_path(), csv_text());
    else append(csv_path(), csv_line(rows_.back()));
    if (tb_) {
      metric_values tagged;
      for (const auto& [name, value] : values) tagged.emplace_back(tensorboard_tag(name), value);
      tb_->add_scalars(tagged, step);
      tb_->flush();
    }
  }

  // Drops every row with a step after `step` and rewrites both files (atomically) as an uninterrupted
  // run would have left them at that point, the CSV header narrowed to the keys of the kept rows.
  // With a TensorBoard writer attached, also writes SessionLog START at step + 1 to it.
  void truncate_after(std::int64_t step) {
    std::size_t keep = 0;
    while (keep < rows_.size() && rows_[keep].step <= step) ++keep;
    rows_.resize(keep);
    rebuild_header();
    rewrite();
    if (tb_) {
      tb_->add_session_start(step + 1);
      tb_->flush();
    }
  }

  // Sends later rows to writer too (nullptr: stop). The writer must outlive this log or be detached.
  void forward_to(tensorboard_writer* writer) noexcept { tb_ = writer; }

  [[nodiscard]] std::filesystem::path jsonl_path() const { return dir_ / "metrics.jsonl"; }
  [[nodiscard]] std::filesystem::path csv_path() const { return dir_ / "metrics.csv"; }
  [[nodiscard]] const std::vector<std::string>& csv_header() const noexcept { return header_; }
  [[nodiscard]] std::size_t rows() const noexcept { return rows_.size(); }
  [[nodiscard]] std::optional<std::int64_t> last_step() const {
    return rows_.empty() ? std::nullopt : std::optional<std::int64_t>(rows_.back().step);
  }
  // Whether open(dir, true) found a last line cut short (by a crash) and dropped it.
  [[nodiscard]] bool dropped_torn_line() const noexcept { return dropped_torn_line_; }

private:
  struct row {
    std::int64_t step;
    std::string json;                                      // the JSONL line, without newline
    std::vector<std::pair<std::string, std::string>> cells; // key -> CSV cell, in logged order
  };

  metrics_log(const std::filesystem::path& dir, bool resume) : dir_(dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec) throw io_error(dir_.string(), "cannot create the metrics directory: " + ec.message());
    if (resume && std::filesystem::exists(jsonl_path())) load();
    rebuild_header();
    rewrite();
  }

  void load() {
    const std::string text = detail::metrics::read_file(jsonl_path());
    std::size_t pos = 0, line_no = 0;
    while (pos < text.size()) {
      ++line_no;
      const std::size_t end = text.find('\n', pos);
      const bool torn = end == std::string::npos;
      const std::string line = text.substr(pos, torn ? std::string::npos : end - pos);
      pos = torn ? text.size() : end + 1;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const auto where = [&](const std::string& field = {}) { return where_in(jsonl_path().string(), line_no, field); };
      nlohmann::ordered_json j;
      try {
        (void)read_json(line, where());  // depth limit, duplicate keys, NUL bytes (core/json.hpp)
        j = nlohmann::ordered_json::parse(line);
      } catch (const json_error& e) {
        if (torn) { dropped_torn_line_ = true; break; }
        throw;
      } catch (const nlohmann::json::parse_error& e) {
        if (torn) { dropped_torn_line_ = true; break; }
        throw format_error(where(), std::string("not valid JSON: ") + e.what());
      }
      if (!j.is_object() || !j.contains("step") || !j["step"].is_number_integer())
        throw format_error(where("step"), "each line must be an object with an integer \"step\"");
      row r{j["step"].get<std::int64_t>(), line, {}};
      if (!rows_.empty() && r.step < rows_.back().step)
        throw format_error(where("step"), "steps decrease (" + std::to_string(r.step) + " after " +
                                              std::to_string(rows_.back().step) + ")");
      for (const auto& [key, value] : j.items()) {
        if (key == "step") continue;
        if (value.is_null()) r.cells.emplace_back(key, "nan");
        else if (value.is_number()) r.cells.emplace_back(key, detail::metrics::csv_cell(value.get<double>()));
        else throw format_error(where(key), "a metric must be a number or null");
      }
      rows_.push_back(std::move(r));
    }
    recover_non_finite_spelling();
  }

  // null in the JSONL lost whether the value was nan, inf or -inf; the CSV row (same position, same
  // step) still has it.
  void recover_non_finite_spelling() {
    if (!std::filesystem::exists(csv_path())) return;
    const auto csv = detail::metrics::parse_csv(detail::metrics::read_file(csv_path()));
    if (csv.empty() || csv[0].empty() || csv[0][0] != "step") return;
    for (std::size_t i = 0; i < rows_.size() && i + 1 < csv.size(); ++i) {
      const auto& cells = csv[i + 1];
      if (cells.size() != csv[0].size() || cells[0] != std::to_string(rows_[i].step)) return;
      for (auto& [key, cell] : rows_[i].cells) {
        if (cell != "nan") continue;
        for (std::size_t c = 1; c < csv[0].size(); ++c)
          if (csv[0][c] == key && (cells[c] == "inf" || cells[c] == "-inf")) cell = cells[c];
      }
    }
  }

  // Adds r's new keys to the header; true when there were any.
  bool add_columns(const row& r) {
    bool wider = false;
    for (const auto& [key, _] : r.cells)
      if (column_.emplace(key, header_.size()).second) header_.push_back(key), wider = true;
    return wider;
  }
  void rebuild_header() {
    header_ = {"step"};
    column_ = {{"step", 0}};
    for (const auto& r : rows_) add_columns(r);
  }

  [[nodiscard]] std::string csv_line(const row& r) const {
    std::vector<std::string> cells(header_.size());
    cells[0] = std::to_string(r.step);
    for (const auto& [key, cell] : r.cells) cells[column_.at(key)] = cell;
    std::string line;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      if (i) line += ',';
      line += cells[i];
    }
    return line + "\n";
  }
  [[nodiscard]] std::string csv_text() const {
    if (rows_.empty()) return {};
    std::string text;
    for (std::size_t i = 0; i < header_.size(); ++i) {
      if (i) text += ',';
      text += detail::metrics::csv_quote(header_[i]);
    }
    text += "\n";
    for (const auto& r : rows_) text += csv_line(r);
    return text;
  }
  void rewrite() {
    std::string jsonl;
    for (const auto& r : rows_) jsonl += r.json + "\n";
    detail::metrics::write_atomically(jsonl_path(), jsonl);
    detail::metrics::write_atomically(csv_path(), csv_text());
  }
  static void append(const std::filesystem::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::app);
    out << text;
    out.flush();
    if (!out) throw io_error(path.string(), "cannot append to the file");
  }

  std::filesystem::path dir_;
  std::vector<row> rows_;
  std::vector<std::string> header_{"step"};
  std::unordered_map<std::string, std::size_t> column_{{"step", 0}};
  tensorboard_writer* tb_ = nullptr;
  bool dropped_torn_line_ = false;
};

} // namespace prefopt::train
