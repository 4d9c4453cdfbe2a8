// prefopt — preference optimization from the command line.
//   prefopt train   preference optimization from a run.json configuration
//   prefopt eval    loss and metrics on held-out pairs
//   prefopt logps   reference log-probs of a dataset of pairs
//   prefopt generate  completions of a prompt dataset (KV cache, sampling)
//   prefopt demo    the bundled default training run
//   prefopt reward  Bradley–Terry reward models: train, score
//   prefopt iterate iterative DPO rounds (sample, judge, pair, train, evaluate)
// Run `prefopt <command> --help` for a command's options.
// Started by mpirun (built with prefopt::mpi), the process joins MPI; ranks other than 0 log
// nothing on std::cerr (errors still reach stderr), and an error on any rank ends the whole job
// (MPI_Abort) rather than leaving the other ranks waiting in a collective.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <optional>
#include <string>

#include "cmd_demo.hpp"
#include "cmd_generate.hpp"
#include "cmd_iterate.hpp"
#include "cmd_logps.hpp"
#include "cmd_reward.hpp"
#include "cmd_train.hpp"

namespace {
const char* usage =
    "usage: prefopt <command> [options]\n"
    "commands:\n"
    "  train    preference optimization of a model directory on a JSONL dataset (--config run.json)\n"
    "  eval     the loss and TRL metrics of a model on held-out pairs\n"
    "  logps    per-pair chosen/rejected log-probs of a model on a dataset of pairs\n"
    "  generate K completions per prompt of a prompt dataset (KV cache; temperature, top-k/p, min-p, ...)\n"
    "  reward   Bradley-Terry reward models: `reward train --config run.json`, `reward score`\n"
    "  iterate  iterative DPO rounds: sample, judge, pair, train, evaluate (--config run.json)\n"
    "  demo     the bundled default: SFT, then DPO/IPO/cDPO on a sentiment task, reward vs KL\n"
    "run `prefopt <command> --help` for the options of a command\n";
}

namespace {
// Ends the job on an error: under mpirun with several ranks, MPI_Abort stops every rank at once.
int failed(int rc) {
#ifdef PREFOPT_HAVE_MPI
  int initialized = 0, ranks = 1;
  MPI_Initialized(&initialized);
  if (initialized) MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  if (ranks > 1) {
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, rc);
  }
#endif
  return rc;
}
} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(usage, stderr);
    return 2;
  }
#ifdef PREFOPT_HAVE_MPI
  std::optional<prefopt::comm::mpi_environment> mpi;
  if (prefopt::comm::mpi_environment::launched()) {
    mpi.emplace(&argc, &argv);
    if (prefopt::comm::mpi{}.rank() != 0) std::cerr.rdbuf(nullptr);
  }
#else
  if (const char* n = std::getenv("OMPI_COMM_WORLD_SIZE"); n && std::atoi(n) > 1) {
    std::fputs("prefopt: error: started by mpirun with several ranks, but this prefopt was built without MPI "
               "(install libopenmpi-dev and rebuild with -DPREFOPT_ENABLE_MPI=ON)\n", stderr);
    return 2;
  }
#endif
  const std::string cmd = argv[1];
  try {
    if (cmd == "demo") return prefopt::cli::cmd_demo(argc, argv);
    if (cmd == "logps") return prefopt::cli::cmd_logps(argc, argv);
    if (cmd == "generate") return prefopt::cli::cmd_generate(argc, argv);
    if (cmd == "train") return prefopt::cli::cmd_train(argc, argv, false);
    if (cmd == "eval") return prefopt::cli::cmd_train(argc, argv, true);
    if (cmd == "reward") return prefopt::cli::cmd_reward(argc, argv);
    if (cmd == "iterate") return prefopt::cli::cmd_iterate(argc, argv);
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
      std::fputs(usage, stdout);
      return 0;
    }
    std::fprintf(stderr, "prefopt: unknown command '%s'\n%s", cmd.c_str(), usage);
    return 2;
  } catch (const prefopt::error& e) {
    std::fprintf(stderr, "prefopt %s: error: %s\n", cmd.c_str(), e.what());
    return failed(1);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prefopt %s: unexpected error: %s\n", cmd.c_str(), e.what());
    return failed(1);
  }
}
