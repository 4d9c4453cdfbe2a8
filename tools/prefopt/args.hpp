// tools/prefopt/args.hpp — a command's options, declared once with a one-line description each and
// parsed by CLI11 (Debian libcli11-dev), which also writes `--help`.
//
// A command (tools/prefopt/cmd_<name>.hpp) — copy this:
//
//   inline const cli::command_info logps_info{
//       "prefopt logps", "Writes chosen_logps / rejected_logps (sums over completion tokens) per line."};
//   inline int cmd_logps(int argc, char** argv) {
//     const args a(argc, argv, 2, logps_info,
//                  {{"model", "DIR", "model directory (config.json, model.safetensors)"},
//                   {"batch-size", "N", "pairs per forward pass (default 8)"},
//                   {"stop", "TEXT...", "a stop string; repeat for several"},   // a.all("stop")
//                   {"strict", "", "stop at the first bad line instead of skipping it"}});  // "": a flag
//     if (a.flag("help")) return 0;  // --help / -h: the options were printed on stdout
//     const std::string model = a.require("model");
//     const long batch = a.integer("batch-size", 8);
//     ...
//   }
//
// and one row in main.cpp's command table ({"logps", "one-line description", cmd_logps}); for a
// command with words after it (`prefopt reward train`), the row's function dispatches on argv[2]
// and the parser starts at 3.
// Converting a command written for the earlier parser (`args(argc, argv, first, {"model", ...},
// {"strict", "help"})`) is mechanical: each name of the two sets becomes a row {name, VALUE, help}
// (VALUE empty for a flag, ending in "..." for an option read with all(); "help" needs no row),
// the usage text becomes the command_info, and `if (a.flag("help")) { std::cout << text; return 0; }`
// becomes `if (a.flag("help")) return 0;`. The accessors (get, has, flag, require, all, integer,
// positional) are unchanged.
//
// `first` is the index of the first option in argv: 2 after `prefopt <command>`, 3 after
// `prefopt reward train`. An option takes one value, `--key value` or `--key=value` (the value may
// start with '-': `--eos-id -1`); given twice, the last counts, and a repeatable one (VALUE "X...")
// keeps every value for all(). A flag takes none. Anything else is a usage_error naming the option
// (main.cpp: exit status 2): an unknown option, an option without its value, a value given to a
// flag. Arguments that are not options are left to the command (positional()).
#pragma once

#include <CLI/CLI.hpp>

#include <iostream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "prefopt/core/error.hpp"

namespace prefopt::cli {

// A malformed command line (exit status 2), as opposed to a bad configuration or input (1).
class usage_error : public config_error {
  using config_error::config_error;
};

struct command_info {
  std::string name;   // "prefopt logps": the usage line's program name
  std::string about;  // what the command does (a few lines at most), printed above the options
};

struct option {
  std::string name;   // without "--"
  std::string value;  // the value's placeholder in --help ("DIR", "N"); empty: a flag; ending in
                      // "..." ("TEXT..."): repeatable, all() returns every value in order
  std::string help;   // one line
};

// One row of main.cpp's command table.
struct command_entry {
  const char* name;
  const char* help;  // one line
  int (*run)(int argc, char** argv);
};

// `prefopt --help`: the commands with their lines, and --help / --version (CLI11's layout).
template <std::size_t N> std::string program_help(const command_entry (&commands)[N], const char* version) {
  CLI::App app{"Preference optimization of language models: DPO and its family.", "prefopt"};
  app.set_help_flag("-h,--help", "print this help and exit");
  app.set_version_flag("--version", std::string(version), "print the version (" + std::string(version) + ") and exit");
  app.get_formatter()->column_width(32);
  for (const auto& c : commands) app.add_subcommand(c.name, c.help);
  app.footer("run `prefopt <command> --help` for the options of a command");
  return app.help();
}

class args {
public:
  args(int argc, char** argv, int first, const command_info& cmd, const std::vector<option>& options) {
    CLI::App app{cmd.about, cmd.name};
    app.set_help_flag("-h,--help", "print this help and exit");
    app.allow_extras();  // arguments that are not options go to positional()
    app.get_formatter()->column_width(32);
    std::map<std::string, bool> takes_value;
    for (const auto& o : options) {
      takes_value[o.name] = !o.value.empty();
      if (o.value.empty()) {
        app.add_flag("--" + o.name, flag_count_[o.name], o.help);
      } else if (o.value.size() > 3 && o.value.ends_with("...")) {  // repeatable: every value kept
        app.add_option("--" + o.name, values_[o.name], o.help)
            ->type_name(o.value.substr(0, o.value.size() - 3))
            ->allow_extra_args(false)
            ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
      } else {  // given twice, the last value counts
        app.add_option("--" + o.name, last_[o.name], o.help)
            ->type_name(o.value)
            ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
      }
    }
    // Every option with a value is handed to CLI11 as --key=value, so a value that looks like an
    // option ("-1") stays a value; the checks here give the messages named above.
    std::vector<std::string> given{cmd.name};
    for (int i = first; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "-h" || a == "--help") {
        given.push_back(a);
        continue;
      }
      if (a.rfind("--", 0) != 0) {
        given.push_back(a);
        continue;
      }
      const auto eq = a.find('=');
      const std::string key = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      const auto known = takes_value.find(key);
      if (known == takes_value.end()) throw usage_error("--" + key, "unknown option (see --help)");
      if (!known->second) {
        if (eq != std::string::npos) throw usage_error("--" + key, "takes no value");
        given.push_back(a);
      } else if (eq != std::string::npos) {
        given.push_back(a);
      } else {
        if (i + 1 >= argc) throw usage_error("--" + key, "needs a value");
        given.push_back(a + "=" + argv[++i]);
      }
    }
    std::vector<const char*> ptrs;
    for (const auto& s : given) ptrs.push_back(s.c_str());
    try {
      app.parse(int(ptrs.size()), ptrs.data());
    } catch (const CLI::CallForHelp&) {
      std::cout << app.help();
      help_ = true;
    } catch (const CLI::ParseError& e) {
      throw usage_error(cmd.name, e.what());
    }
    positional_ = app.remaining();
    for (const auto& [name, v] : last_)
      if (app.count("--" + name) > 0) values_[name] = {v};
    for (auto it = values_.begin(); it != values_.end();) it = it->second.empty() ? values_.erase(it) : std::next(it);
  }

  bool flag(const std::string& k) const {
    if (k == "help") return help_;
    const auto it = flag_count_.find(k);
    return it != flag_count_.end() && it->second > 0;
  }
  bool has(const std::string& k) const { return values_.count(k) != 0; }
  std::string get(const std::string& k, const std::string& fallback = "") const {
    const auto it = values_.find(k);
    return it == values_.end() ? fallback : it->second.back();
  }
  std::string require(const std::string& k) const {
    if (!has(k)) throw config_error("--" + k, "is required");
    return get(k);
  }
  const std::vector<std::string>& all(const std::string& k) const {
    static const std::vector<std::string> none;
    const auto it = values_.find(k);
    return it == values_.end() ? none : it->second;
  }
  long integer(const std::string& k, long fallback) const {
    if (!has(k)) return fallback;
    try {
      std::size_t used = 0;
      const long v = std::stol(get(k), &used);
      if (used != get(k).size()) throw std::invalid_argument("");
      return v;
    } catch (const std::exception&) {
      throw config_error("--" + k, "expects an integer, got '" + get(k) + "'");
    }
  }
  const std::vector<std::string>& positional() const { return positional_; }

private:
  std::map<std::string, std::vector<std::string>> values_;  // the options given, with their values
  std::map<std::string, std::string> last_;                  // the value of each non-repeatable option
  std::map<std::string, int> flag_count_;
  std::vector<std::string> positional_;
  bool help_ = false;
};

} // namespace prefopt::cli
