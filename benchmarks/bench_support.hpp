// benchmarks/bench_support.hpp — timing, peak-memory probe, arguments and reproducible values for prefopt_bench.
//
// Peak memory: Linux keeps a process's peak resident set (VmHWM in /proc/self/status); writing "5"
// to /proc/self/clear_refs resets it to the current resident set. A measured case resets it after
// its setup (weights, inputs loaded) and reports VmHWM − VmRSS-at-reset: the memory the measured
// work needed on top of what it started with. torch_bench.py does exactly the same, so the two
// numbers compare. Each case runs in its own process (run.py), so nothing earlier inflates it.
//
// Values: value(i, seed) = (float(u >> 8)·2⁻²⁴ − 0.5)·scale, u = mix(i, seed) (splitmix64),
// evaluated in float32; torch_bench.py computes the same bits with numpy, so both sides see
// identical inputs without a file.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <sys/resource.h>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace prefopt::bench {

// A field of /proc/self/status in kB (VmRSS, VmHWM), or -1 where there is none.
inline long status_kb(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
  return -1;
}

// Peak resident memory of a measured region, relative to the resident memory at its start.
class peak_probe {
public:
  void start() {
    std::ofstream("/proc/self/clear_refs") << "5";
    base_kb_ = status_kb("VmRSS");
    reset_ok_ = status_kb("VmHWM") <= base_kb_ + 64;  // the kernel honoured the reset
    if (!reset_ok_) base_kb_ = status_kb("VmHWM");    // fall back: growth of the process peak
  }
  long peak_delta_kb() const { return status_kb("VmHWM") - base_kb_; }
  long base_kb() const { return base_kb_; }
  bool reset_ok() const { return reset_ok_; }

private:
  long base_kb_ = 0;
  bool reset_ok_ = false;
};

// CPU seconds this process has used, all threads, user + system.
inline double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// Wall seconds of each measured repetition, and CPU seconds of each (all threads). On a machine
// other work shares, a one-thread run's CPU time still measures the work done, its wall time not.
struct timings {
  std::vector<double> wall, cpu;
};

// Runs f warmup times, then reps times, timing each of those.
inline timings time_runs(int warmup, int reps, const std::function<void()>& f) {
  for (int i = 0; i < warmup; ++i) f();
  timings t;
  for (int i = 0; i < reps; ++i) {
    const double c = cpu_seconds();
    const auto a = std::chrono::steady_clock::now();
    f();
    t.wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count());
    t.cpu.push_back(cpu_seconds() - c);
  }
  return t;
}

inline double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// splitmix64's finalizer of i + seed·φ (mod 2⁶⁴), top 32 bits.
inline std::uint32_t mix(std::uint64_t i, std::uint64_t seed) {
  std::uint64_t z = i + seed * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return std::uint32_t((z ^ (z >> 31)) >> 32);
}
inline float value(std::uint64_t i, std::uint64_t seed, float scale) {
  return (float(mix(i, seed) >> 8) * 0x1p-24f - 0.5f) * scale;
}
inline std::vector<float> values(std::size_t n, std::uint64_t seed, float scale) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = value(i, seed, scale);
  return v;
}

// --key value arguments after the subcommand.
class args {
public:
  args(int argc, char** argv, int first) {
    for (int i = first; i < argc; i += 2) {
      const std::string k = argv[i];
      if (k.rfind("--", 0) != 0 || i + 1 >= argc) throw std::invalid_argument("expected --key value, got '" + k + "'");
      kv_[k.substr(2)] = argv[i + 1];
    }
  }
  std::string str(const std::string& k, const std::string& def = {}) const {
    const auto it = kv_.find(k);
    if (it != kv_.end()) return it->second;
    if (def.empty()) throw std::invalid_argument("missing --" + k);
    return def;
  }
  int num(const std::string& k, int def) const {
    const auto it = kv_.find(k);
    return it == kv_.end() ? def : std::stoi(it->second);
  }

private:
  std::map<std::string, std::string> kv_;
};

} // namespace prefopt::bench
