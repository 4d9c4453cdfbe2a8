// tools/prefopt/args.hpp — command line arguments: `--key value`, `--key=value` and `--flag`.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "prefopt/core/error.hpp"

namespace prefopt::cli {

class args {
public:
  // `flags` take no value; every other option takes one. Unknown options are an error.
  args(int argc, char** argv, int first, std::set<std::string> options, std::set<std::string> flags) {
    for (int i = first; i < argc; ++i) {
      std::string a = argv[i];
      if (a.rfind("--", 0) != 0) {
        positional_.push_back(a);
        continue;
      }
      std::string key = a.substr(2), value;
      const auto eq = key.find('=');
      const bool inline_value = eq != std::string::npos;
      if (inline_value) {
        value = key.substr(eq + 1);
        key = key.substr(0, eq);
      }
      if (flags.count(key)) {
        if (inline_value) throw config_error("--" + key, "takes no value");
        flags_.insert(key);
      } else if (options.count(key)) {
        if (!inline_value) {
          if (i + 1 >= argc) throw config_error("--" + key, "needs a value");
          value = argv[++i];
        }
        values_[key].push_back(value);
      } else {
        throw config_error("--" + key, "unknown option (see --help)");
      }
    }
  }
  bool flag(const std::string& k) const { return flags_.count(k) != 0; }
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
  std::map<std::string, std::vector<std::string>> values_;
  std::set<std::string> flags_;
  std::vector<std::string> positional_;
};

} // namespace prefopt::cli
