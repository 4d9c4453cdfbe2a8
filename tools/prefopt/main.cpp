// prefopt — preference optimization from the command line.
//   prefopt train   preference optimization from a run.json configuration
//   prefopt eval    loss and metrics on held-out pairs
//   prefopt logps   reference log-probs of a dataset of pairs
//   prefopt generate  completions of a prompt dataset (KV cache, sampling)
//   prefopt demo    the bundled default training run
//   prefopt reward  Bradley–Terry reward models: train, score
//   prefopt iterate iterative DPO rounds (sample, judge, pair, train, evaluate)
// Run `prefopt <command> --help` for a command's options, `prefopt --version` for the version
// (CMake's project version). Options are parsed by CLI11 (args.hpp, which shows how a command
// declares them); a malformed command line exits with status 2, any other error with 1.
// Started by mpirun (built with prefopt::mpi), the process joins MPI; ranks other than 0 log
// nothing on std::cerr (errors still reach stderr), and an error on any rank ends the whole job
// (MPI_Abort) rather than leaving the other ranks waiting in a collective.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <optional>
#include <string>

#include "prefopt/backends/eigen/openblas_kernels.hpp"

#include "cmd_demo.hpp"
#include "cmd_generate.hpp"
#include "cmd_iterate.hpp"
#include "cmd_logps.hpp"
#include "cmd_reward.hpp"
#include "cmd_train.hpp"

namespace {
using prefopt::cli::command_entry;
// The commands: name, one line for `prefopt --help`, and the function that runs it (argv[1] is the
// command's name; its options start at argv[2]). A new command is one row here.
const command_entry commands[] = {
    {"train", "preference optimization of a model directory on a JSONL dataset (--config run.json)",
     [](int argc, char** argv) { return prefopt::cli::cmd_train(argc, argv, false); }},
    {"eval", "the loss and TRL metrics of a model on held-out pairs",
     [](int argc, char** argv) { return prefopt::cli::cmd_train(argc, argv, true); }},
    {"logps", "per-pair chosen/rejected log-probs of a model on a dataset of pairs", prefopt::cli::cmd_logps},
    {"generate", "K completions per prompt of a prompt dataset (KV cache; temperature, top-k/p, min-p, ...)",
     prefopt::cli::cmd_generate},
    {"reward", "Bradley-Terry reward models: `reward train --config run.json`, `reward score`", prefopt::cli::cmd_reward},
    {"iterate", "iterative DPO rounds: sample, judge, pair, train, evaluate (--config run.json)", prefopt::cli::cmd_iterate},
    {"demo", "the bundled default: SFT, then DPO/IPO/cDPO on a sentiment task, reward vs KL", prefopt::cli::cmd_demo},
};
} // namespace

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
  prefopt::backends::use_better_blas_kernels(argv);  // OpenBLAS's kernels where it missed the CPU (restarts once)
  if (argc < 2) {
    std::fputs(prefopt::cli::program_help(commands, PREFOPT_VERSION).c_str(), stderr);
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
    for (const auto& c : commands)
      if (cmd == c.name) return c.run(argc, argv);
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
      std::fputs(prefopt::cli::program_help(commands, PREFOPT_VERSION).c_str(), stdout);
      return 0;
    }
    if (cmd == "--version") {
      std::printf("prefopt %s\n%s\n", PREFOPT_VERSION, prefopt::backends::openblas_kernels().describe().c_str());
      return 0;
    }
    std::fprintf(stderr, "prefopt: unknown command '%s'\n%s", cmd.c_str(),
                 prefopt::cli::program_help(commands, PREFOPT_VERSION).c_str());
    return 2;
  } catch (const prefopt::cli::usage_error& e) {  // a malformed command line
    std::fprintf(stderr, "prefopt %s: error: %s\n", cmd.c_str(), e.what());
    return failed(2);
  } catch (const prefopt::error& e) {
    std::fprintf(stderr, "prefopt %s: error: %s\n", cmd.c_str(), e.what());
    return failed(1);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prefopt %s: unexpected error: %s\n", cmd.c_str(), e.what());
    return failed(1);
  }
}
