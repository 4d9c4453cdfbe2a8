// prefopt — preference optimization from the command line.
//   prefopt logps   reference log-probs of a tokenized pair dataset
// Run `prefopt <command> --help` for a command's options.
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>

#include "cmd_demo.hpp"
#include "cmd_logps.hpp"

namespace {
const char* usage =
    "usage: prefopt <command> [options]\n"
    "commands:\n"
    "  logps    per-pair chosen/rejected log-probs of a model on a tokenized dataset\n"
    "run `prefopt <command> --help` for the options of a command\n";
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(usage, stderr);
    return 2;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "demo") return prefopt::cli::cmd_demo(argc, argv);
    if (cmd == "logps") return prefopt::cli::cmd_logps(argc, argv);
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
      std::fputs(usage, stdout);
      return 0;
    }
    std::fprintf(stderr, "prefopt: unknown command '%s'\n%s", cmd.c_str(), usage);
    return 2;
  } catch (const prefopt::error& e) {
    std::fprintf(stderr, "prefopt %s: error: %s\n", cmd.c_str(), e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prefopt %s: unexpected error: %s\n", cmd.c_str(), e.what());
    return 1;
  }
}
