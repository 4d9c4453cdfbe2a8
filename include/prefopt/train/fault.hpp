// prefopt/train/fault.hpp — fault injection for the tests of a data parallel run's failure path.
//
//   PREFOPT_FAULT_KILL="rank=1,step=3" mpirun -np 2 prefopt train ...
// The process of rank R sends itself SIGKILL right after optimizer step S (after that step's
// logging, evaluation and checkpoint): a rank that dies at a known point, so a test of "the job
// ends with an error, then resumes from the last checkpoint" is deterministic (killing a process
// from a script at the right moment is racy). Unset or empty: nothing happens. A malformed value
// is a config_error naming the variable. The runner (train/runner.hpp) reads it once per run.
#pragma once

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>

#include "prefopt/core/error.hpp"

namespace prefopt::train {

struct fault_kill {
  int rank = 0;
  long step = 0;
};

// "rank=R,step=S" (either order; R ≥ 0, S ≥ 1).
inline std::optional<fault_kill> parse_fault_kill(const std::string& v) {
  if (v.empty()) return std::nullopt;
  const auto bad = [&] {
    return config_error("environment variable PREFOPT_FAULT_KILL", "'" + v + "' is not rank=R,step=S (R ≥ 0, S ≥ 1)");
  };
  fault_kill f{-1, -1};
  std::istringstream in(v);
  std::string item;
  while (std::getline(in, item, ',')) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) throw bad();
    const std::string key = item.substr(0, eq), val = item.substr(eq + 1);
    std::size_t used = 0;
    long n = -1;
    try {
      n = std::stol(val, &used);
    } catch (const std::exception&) {
      throw bad();
    }
    if (used != val.size()) throw bad();
    if (key == "rank") f.rank = int(n);
    else if (key == "step") f.step = n;
    else throw bad();
  }
  if (f.rank < 0 || f.step < 1) throw bad();
  return f;
}

inline std::optional<fault_kill> fault_kill_from_env() {
  const char* v = std::getenv("PREFOPT_FAULT_KILL");
  return parse_fault_kill(v ? v : "");
}

// Called after each optimizer step: kills this process when (rank, step) is the planned fault.
inline void fault_point(const std::optional<fault_kill>& f, int rank, long step) {
  if (!f || f->rank != rank || f->step != step) return;
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::ostringstream msg;  // the wall-clock time lets a test measure how long the job takes to end after it
  msg.precision(3);
  msg << std::fixed << "prefopt: PREFOPT_FAULT_KILL: rank " << rank << " kills itself after step " << step << " at " << now << " s\n";
  std::fputs(msg.str().c_str(), stderr);  // the process's stderr (a rank > 0 may have std::cerr silenced)
  std::fflush(stderr);
  std::raise(SIGKILL);
}

} // namespace prefopt::train
