// prefopt/loop/command_judge.hpp — an external program as a judge (a Python script, an LLM-as-judge
// client, a shell pipeline), plugged in without linking.
//
// Protocol. For each score()/compare() call the command is started once (argv, no shell: give
// {"/bin/sh", "-c", "..."} for one). It reads one JSON line per request on stdin,
//   {"prompt": "...", "completions": ["...", "..."]}
// and stdin is closed after the last one. It writes one line per request, in order, on stdout:
//   scoring command   a JSON array of numbers, one per completion: [0.5, -1.25]
//   pairwise command  0 or 1 (the better of the two completions) or -1 (a tie)
// and exits 0. Its stderr is passed through. It may answer as it reads (both pipes are served at
// once) or after reading everything.
// Anything else is a judge_error naming the command and what went wrong: a non-zero exit, no
// answer within `timeout` (the child is killed), fewer lines than requests (early EOF), more lines,
// a line that is not JSON or not the expected shape, a wrong count, a non-finite number.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "prefopt/loop/detail/child_process.hpp"
#include "prefopt/loop/judge.hpp"
#include "prefopt/loop/pairwise.hpp"

namespace prefopt::loop {

struct command_options {
  std::vector<std::string> argv;                       // the program and its arguments (argv[0] looked up on PATH)
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};  // for one whole call (start to exit)
  std::string name{};                                  // in errors and logs; default: argv joined by spaces
};

namespace detail {

inline std::string command_name(const command_options& o) {
  if (!o.name.empty()) return o.name;
  std::string s;
  for (const auto& a : o.argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

// The requests as the command reads them: one JSON object per line.
inline std::string request_lines(std::span<const judge_request> batch) {
  std::string s;
  for (const auto& r : batch)
    s += nlohmann::json{{"prompt", r.prompt}, {"completions", r.completions}}.dump(-1, ' ', false,
                                                                                   nlohmann::json::error_handler_t::replace) +
         "\n";
  return s;
}

// Runs the command on the batch; parse(line, index) turns answer line `index` into T.
template <class T, class Parse>
std::vector<T> run_judge_command(const command_options& o, std::span<const judge_request> batch, Parse&& parse) {
  const std::string name = command_name(o);
  const std::string where = "judge '" + name + "'";
  if (o.argv.empty() || o.argv[0].empty()) throw config_error(where, "no command given");
  std::vector<T> out;
  out.reserve(batch.size());
  const auto r = exchange(o.argv, request_lines(batch), batch.size(), o.timeout, [&](std::string&& line) {
    const std::size_t index = out.size();
    if (index >= batch.size())
      throw judge_error(where, "output line " + std::to_string(index + 1) + ": more answer lines than the " +
                                   std::to_string(batch.size()) + " requests");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      throw judge_error(where, "output line " + std::to_string(index + 1) + ": not JSON: '" + line.substr(0, 80) + "'");
    }
    out.push_back(parse(j, index, "output line " + std::to_string(index + 1)));
  });
  if (!r.os_error.empty()) throw judge_error(where, r.os_error);
  if (r.timed_out)
    throw judge_error(where, "timed out after " + std::to_string(o.timeout.count()) + " ms (killed) with " +
                                 std::to_string(out.size()) + " of " + std::to_string(batch.size()) + " answer lines");
  if (r.exit_code != 0)
    throw judge_error(where, "exited with status " + std::to_string(r.exit_code) + " after " + std::to_string(out.size()) +
                                 " of " + std::to_string(batch.size()) + " answer lines");
  if (out.size() < batch.size())
    throw judge_error(where, "output ended (EOF) after " + std::to_string(out.size()) + " of " +
                                 std::to_string(batch.size()) + " answer lines");
  return out;
}

} // namespace detail

// A command that scores: one JSON array of numbers per request.
class command_judge {
public:
  explicit command_judge(command_options o) : o_(std::move(o)) {}

  std::vector<std::vector<double>> score(std::span<const judge_request> batch) {
    const std::string where = "judge '" + name() + "'";
    auto scores = detail::run_judge_command<std::vector<double>>(
        o_, batch, [&](const nlohmann::json& j, std::size_t i, const std::string& line) {
          if (!j.is_array()) throw judge_error(where, line + ": expected a JSON array of numbers, got " + j.dump());
          if (j.size() != batch[i].completions.size())
            throw judge_error(where, line + ": " + std::to_string(j.size()) + " scores for " +
                                         std::to_string(batch[i].completions.size()) + " completions");
          std::vector<double> s;
          for (std::size_t k = 0; k < j.size(); ++k) {
            if (!j[k].is_number())
              throw judge_error(where, line + ": score " + std::to_string(k) + " is not a number: " + j[k].dump());
            s.push_back(j[k].get<double>());
          }
          return s;
        });
    check_scores(name(), batch, scores);
    return scores;
  }
  std::string name() const { return detail::command_name(o_); }

private:
  command_options o_;
};

// A command that compares two completions: 0, 1 or -1 per request.
class pairwise_command_judge {
public:
  explicit pairwise_command_judge(command_options o) : o_(std::move(o)) {}

  std::vector<int> compare(std::span<const judge_request> batch) {
    const std::string where = "judge '" + name() + "'";
    check_pairwise_requests(name(), batch);
    auto choices = detail::run_judge_command<int>(o_, batch, [&](const nlohmann::json& j, std::size_t, const std::string& line) {
      if (!j.is_number_integer() || (j.get<long long>() != 0 && j.get<long long>() != 1 && j.get<long long>() != -1))
        throw judge_error(where, line + ": expected 0, 1 or -1, got " + j.dump());
      return int(j.get<long long>());
    });
    check_choices(name(), batch, choices);
    return choices;
  }
  std::string name() const { return detail::command_name(o_); }

private:
  command_options o_;
};

static_assert(scoring_judge<command_judge>);
static_assert(pairwise_judge<pairwise_command_judge>);

} // namespace prefopt::loop
