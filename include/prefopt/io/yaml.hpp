// prefopt/io/yaml.hpp — a YAML document (TRL's command line configs are YAML) as the JSON tree the
// config reader takes, with the line of every mapping key, so errors name the line.
//
// Parsing is yaml-cpp's (Debian: libyaml-cpp-dev; link the prefopt::yaml target). What is written
// here is only the mapping of its node tree onto nlohmann::json:
//   scalars    a quoted or tagged scalar is a string; a plain one is resolved as PyYAML (which TRL's
//              parser uses) resolves it where that is unambiguous: null (~, null, empty), booleans
//              (true/false, yes/no, on/off in any of YAML's three casings), integers (decimal,
//              0x hex, 0o octal), floats (1.5, 1e-6, .inf, -.inf, .nan); anything else a string.
//              (PyYAML reads 1e-6 as a string, which TRL's parser then converts to the float field's
//              type: the value TRL trains with is the float this gives.)
//   mappings   objects; keys are scalars; a key given twice is an error naming both lines.
//   sequences  arrays.
// Limits, each an error naming the line: nesting deeper than json_default_max_depth, more than
// max_nodes nodes in all (aliases are expanded, so "billion laughs" documents stop here), more
// than one document.
#pragma once

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <string_view>

#include "prefopt/core/error.hpp"
#include "prefopt/core/json.hpp"
#include "prefopt/io/detail/utf8.hpp"

namespace prefopt::io {

struct yaml_document {
  nlohmann::json value;                        // an object, array or scalar; {} for an empty document
  std::map<std::string, std::size_t> lines{};  // JSON pointer of each mapping entry ("/lora/r") → its 1-based line
  [[nodiscard]] std::size_t line_of(const std::string& pointer) const {
    const auto it = lines.find(pointer);
    return it == lines.end() ? 0 : it->second;
  }
};

struct yaml_limits {
  std::size_t max_depth = json_default_max_depth;
  std::size_t max_nodes = 1'000'000;
};

namespace detail {

// A decimal number as Python's float() reads it: beyond double's range it is ±inf, below it 0 or
// a subnormal (std::stod would throw; found by fuzzing: learning_rate: 1.0e-26666).
inline double decimal_float(const std::string& s) { return std::strtod(s.c_str(), nullptr); }

inline nlohmann::json yaml_plain_scalar(const std::string& s) {
  static const std::regex int_dec("[-+]?[0-9]+"), int_hex("0x[0-9a-fA-F]+"), int_oct("0o[0-7]+");
  static const std::regex flt("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  for (const char* t : {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"})
    if (s == t) return true;
  for (const char* f : {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"})
    if (s == f) return false;
  try {
    if (std::regex_match(s, int_dec)) {
      if (s[0] == '-') return std::stoll(s);
      return std::stoull(s[0] == '+' ? s.substr(1) : s);
    }
    if (std::regex_match(s, int_hex)) return std::stoull(s.substr(2), nullptr, 16);
    if (std::regex_match(s, int_oct)) return std::stoull(s.substr(2), nullptr, 8);
  } catch (const std::out_of_range&) {  // beyond 64 bits: a decimal becomes a float (range-checked later), else text
    return std::regex_match(s, int_dec) ? nlohmann::json(decimal_float(s)) : nlohmann::json(s);
  }
  if (std::regex_match(s, flt)) return decimal_float(s);
  for (const char* inf : {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"})
    if (s == inf) return std::numeric_limits<double>::infinity();
  for (const char* inf : {"-.inf", "-.Inf", "-.INF"})
    if (s == inf) return -std::numeric_limits<double>::infinity();
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return std::numeric_limits<double>::quiet_NaN();
  return s;
}

inline std::string json_pointer_token(std::string key) {  // RFC 6901: ~ → ~0, / → ~1
  std::string out;
  for (char c : key) out += c == '~' ? "~0" : c == '/' ? "~1" : std::string(1, c);
  return out;
}

// Parser events, discarded: read_yaml counts documents with it.
struct yaml_event_sink : YAML::EventHandler {
  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

struct yaml_converter {
  const std::string& file;
  const yaml_limits& limits;
  yaml_document& doc;
  std::size_t nodes = 0;

  [[nodiscard]] std::string at(const YAML::Mark& m) const { return where_in(file, m.is_null() ? 0 : std::size_t(m.line + 1)); }

  nlohmann::json convert(const YAML::Node& n, const std::string& pointer, std::size_t depth) {
    if (++nodes > limits.max_nodes)
      throw config_error(at(n.Mark()), "more than " + std::to_string(limits.max_nodes) + " values (aliases expanded)");
    if (depth > limits.max_depth)
      throw config_error(at(n.Mark()), "nested deeper than " + std::to_string(limits.max_depth) + " levels");
    switch (n.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null: return nullptr;
    case YAML::NodeType::Scalar:
      // "!" is the tag of a quoted scalar; any explicit tag keeps the text as it is.
      return n.Tag() == "?" ? yaml_plain_scalar(n.Scalar()) : nlohmann::json(n.Scalar());
    case YAML::NodeType::Sequence: {
      nlohmann::json a = nlohmann::json::array();
      std::size_t i = 0;
      for (const auto& e : n) a.push_back(convert(e, pointer + "/" + std::to_string(i++), depth + 1));
      return a;
    }
    case YAML::NodeType::Map: {
      nlohmann::json o = nlohmann::json::object();
      for (const auto& kv : n) {
        if (!kv.first.IsScalar()) throw config_error(at(kv.first.Mark()), "a mapping key must be a plain value, not a list or mapping");
        const std::string key = kv.first.Scalar();
        const std::string p = pointer + "/" + json_pointer_token(key);
        const std::size_t line = kv.first.Mark().is_null() ? 0 : std::size_t(kv.first.Mark().line + 1);
        if (o.contains(key))
          throw config_error(where_in(file, line, key), "duplicate key (first on line " + std::to_string(doc.line_of(p)) + ")");
        doc.lines[p] = line;
        o[key] = convert(kv.second, p, depth + 1);
      }
      return o;
    }
    }
    return nullptr;
  }
};

} // namespace detail

// Parses `text`; `file` names it in every error ("run.yaml:12: ...").
[[nodiscard]] inline yaml_document read_yaml(const std::string& text, const std::string& file, const yaml_limits& limits = {}) {
  yaml_document doc;
  // YAML is Unicode text: a byte that is not UTF-8 is an error at its line (found by fuzzing: such
  // a byte reached the config as a string that no JSON writer could print).
  if (const auto bad = detail::first_invalid_utf8(text)) {
    const auto line = std::size_t(std::count(text.begin(), text.begin() + std::ptrdiff_t(*bad), '\n')) + 1;
    throw config_error(where_in(file, line), "not valid YAML: a byte that is not UTF-8 (offset " + std::to_string(*bad) + ")");
  }
  YAML::Node root;
  try {
    // Documents are counted with a bounded loop of the parser, not YAML::LoadAll: yaml-cpp 0.7's
    // LoadAll never returns on some malformed input (",b": the parser hands out the same empty
    // document forever, until memory runs out; found by fuzzing). A second document is an error
    // anyway.
    std::istringstream in(text);
    YAML::Parser parser(in);
    detail::yaml_event_sink sink;
    int documents = 0;
    while (documents < 2 && parser.HandleNextDocument(sink)) ++documents;
    if (documents > 1) throw config_error(file, "holds more than one YAML document; a config is one");
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw config_error(where_in(file, e.mark.is_null() ? 0 : std::size_t(e.mark.line + 1)), "not valid YAML: " + e.msg);
  }
  if (root.IsNull()) {
    doc.value = nlohmann::json::object();
    return doc;
  }
  detail::yaml_converter c{file, limits, doc};
  try {
    doc.value = c.convert(root, "", 0);
  } catch (const YAML::Exception& e) {  // yaml-cpp checks while walking too (bad conversions)
    throw config_error(where_in(file, e.mark.is_null() ? 0 : std::size_t(e.mark.line + 1)), "not valid YAML: " + e.msg);
  }
  return doc;
}

[[nodiscard]] inline yaml_document read_yaml_file(const std::filesystem::path& path, const yaml_limits& limits = {}) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw io_error(path.string(), "cannot open for reading");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw io_error(path.string(), "read failed");
  return read_yaml(buffer.str(), path.string(), limits);
}

// A .yaml or .yml file name.
[[nodiscard]] inline bool is_yaml_path(const std::filesystem::path& path) {
  const auto ext = path.extension().string();
  return ext == ".yaml" || ext == ".yml";
}

} // namespace prefopt::io
