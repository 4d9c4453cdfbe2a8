// prefopt/train/progress.hpp — training progress: an updating bar on a terminal, plain lines elsewhere.
//
// On a terminal (the stream is std::cout / std::cerr / std::clog, its descriptor isatty, and TERM is
// not "dumb") each update redraws one line in place, as wide as the terminal minus one column:
//   \r[#####.......] 120/1000  12%  3.4 it/s  ETA 04:18  loss 0.6931  rewards/margins 0.1234
// (metrics that do not fit are left off, then the bar shrinks; the bar needs 10 columns). Otherwise
// (a log file, a pipe, CI) it prints a plain line every `every_steps` steps or `every_seconds`
// seconds, whichever comes first, and at the last step:
//   step 120/1000 (12%) 3.4 it/s eta 04:18 loss=0.6931 rewards/margins=0.1234
// finish() ends with a summary: "done 1000/1000 steps in 4:54 (3.4 it/s) loss=0.6931".
//
// Rate: exponential moving averages of the steps and of the seconds between updates, each newest
// interval weighted by `smoothing` (tqdm's scheme, default 0.3); rate = EMA(steps) / EMA(seconds).
// Shown as "x.x it/s", or "x.x s/it" below one step a second. ETA = remaining steps / rate,
// formatted mm:ss, or h:mm:ss from an hour on; "--:--" while unknown. Metric values use 4
// significant digits (%.4g). With total = 0 (unknown) there is no bar, percentage or ETA.
// The clock and the stream are injectable, and is_terminal can be forced, so tests are exact.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <iostream>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/ioctl.h>
#include <unistd.h>
#endif

namespace prefopt::train {

using metric_values = std::vector<std::pair<std::string, double>>; // also declared by metrics_log.hpp

struct progress_options {
  std::int64_t initial_step = 0;      // a resumed run starts counting here
  std::optional<bool> is_terminal{};  // default: detected from the stream (see above)
  int columns = 0;                    // terminal width; 0: $COLUMNS, else the terminal's own, else 80
  std::int64_t every_steps = 10;      // plain lines: every N steps (0: never by count) ...
  double every_seconds = 30.0;        // ... or after T seconds (0: never by time)
  double redraw_seconds = 0.1;        // terminal: at most one redraw per interval (last step always)
  double smoothing = 0.3;             // EMA weight of the newest interval, in (0, 1]
  std::function<double()> clock{};    // monotonic seconds; default std::chrono::steady_clock
};

namespace detail::progress {
inline int stream_fd(const std::ostream& out) {
  if (&out == &std::cout) return 1;
  if (&out == &std::cerr || &out == &std::clog) return 2;
  return -1;
}
inline bool is_terminal(const std::ostream& out) {
  const char* term = std::getenv("TERM");
  if (term != nullptr && std::string_view(term) == "dumb") return false;
#if defined(__unix__) || defined(__APPLE__)
  const int fd = stream_fd(out);
  return fd >= 0 && ::isatty(fd) == 1;
#else
  (void)out;
  return false;
#endif
}
inline int columns(const std::ostream& out) {
  if (const char* c = std::getenv("COLUMNS")) {
    char* end = nullptr;
    const long n = std::strtol(c, &end, 10);
    if (end != c && *end == '\0' && n > 0 && n < 100000) return static_cast<int>(n);
  }
#if defined(__unix__) || defined(__APPLE__)
  winsize ws{};
  if (const int fd = stream_fd(out); fd >= 0 && ::ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
#else
  (void)out;
#endif
  return 80;
}
// Concatenation by appending (GCC 12 misreports "literal" + std::string temporaries under -Wrestrict).
inline std::string cat(std::initializer_list<std::string_view> parts) {
  std::string s;
  for (auto p : parts) s.append(p);
  return s;
}
template <class... A> std::string format(const char* format_string, A... args) {
  char buffer[64];
  const int n = std::snprintf(buffer, sizeof buffer, format_string, args...);
  return std::string(buffer, static_cast<std::size_t>(std::clamp(n, 0, int(sizeof buffer) - 1)));
}
} // namespace detail::progress

class progress {
public:
  progress(std::ostream& out, std::int64_t total, progress_options options = {})
      : out_(out), total_(total), options_(std::move(options)) {
    if (!options_.clock)
      options_.clock = [] { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); };
    terminal_ = options_.is_terminal ? *options_.is_terminal : detail::progress::is_terminal(out_);
    columns_ = options_.columns > 0 ? options_.columns : detail::progress::columns(out_);
    start_time_ = last_time_ = last_print_time_ = options_.clock();
    step_ = last_step_ = last_print_step_ = options_.initial_step;
  }
  progress(const progress&) = delete;
  progress& operator=(const progress&) = delete;
  ~progress() {
    if (terminal_ && drawn_ > 0 && !finished_) out_ << '\n' << std::flush;
  }

  // The run has completed `step` steps; metrics (shown in order) replace the previous ones when given.
  void update(std::int64_t step, const metric_values& metrics = {}) {
    const double now = options_.clock();
    if (!metrics.empty()) metrics_ = metrics;
    const auto dn = static_cast<double>(step - last_step_);
    const double dt = now - last_time_;
    if (dn > 0 && dt > 0) {
      const double a = options_.smoothing;
      ema_steps_ = a * dn + (1 - a) * ema_steps_;
      ema_seconds_ = a * dt + (1 - a) * ema_seconds_;
      last_step_ = step;
      last_time_ = now;
    }
    step_ = step;
    const bool last = total_ > 0 && step >= total_;
    if (terminal_) {
      if (last || drawn_ == 0 || now - last_draw_time_ >= options_.redraw_seconds) draw(now);
    } else if (last || (options_.every_steps > 0 && step - last_print_step_ >= options_.every_steps) ||
               (options_.every_seconds > 0 && now - last_print_time_ >= options_.every_seconds)) {
      out_ << plain_line() << '\n' << std::flush;
      last_print_step_ = step;
      last_print_time_ = now;
    }
  }

  // Prints a line of its own (an evaluation result, a warning) without breaking the bar.
  void message(std::string_view line) {
    if (terminal_ && drawn_ > 0) {
      out_ << '\r' << std::string(static_cast<std::size_t>(drawn_), ' ') << '\r' << line << '\n';
      drawn_ = 0;
      draw(options_.clock());
    } else {
      out_ << line << '\n' << std::flush;
    }
  }

  // The summary line (once); on a terminal the bar is drawn a last time above it.
  void finish(const metric_values& metrics = {}) {
    if (finished_) return;
    const double now = options_.clock();
    if (!metrics.empty()) metrics_ = metrics;
    if (terminal_) {
      draw(now);
      out_ << '\n';
    }
    finished_ = true;
    const double elapsed = now - start_time_;
    const auto done = static_cast<double>(step_ - options_.initial_step);
    using detail::progress::cat;
    std::string line = cat({"done ", std::to_string(step_), total_ > 0 ? cat({"/", std::to_string(total_)}) : "",
                            " steps in ", format_duration(elapsed)});
    if (elapsed > 0 && done > 0) line += cat({" (", format_rate(done / elapsed), ")"});
    out_ << line << metrics_text(" ", "=") << '\n' << std::flush;
  }

  // Steps per second (moving average); 0 until a step has been timed.
  [[nodiscard]] double rate() const noexcept { return ema_seconds_ > 0 ? ema_steps_ / ema_seconds_ : 0.0; }
  // Seconds left; empty while the rate or the total is unknown.
  [[nodiscard]] std::optional<double> eta_seconds() const {
    if (total_ <= 0 || rate() <= 0) return std::nullopt;
    return static_cast<double>(std::max<std::int64_t>(total_ - step_, 0)) / rate();
  }
  [[nodiscard]] bool is_terminal() const noexcept { return terminal_; }
  [[nodiscard]] int columns() const noexcept { return columns_; }

  // "04:18" below an hour, "1:02:03" from an hour on (whole seconds, rounded).
  [[nodiscard]] static std::string format_duration(double seconds) {
    const auto s = static_cast<long long>(std::llround(std::max(seconds, 0.0)));
    if (s >= 3600) return detail::progress::format("%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
    return detail::progress::format("%02lld:%02lld", s / 60, s % 60);
  }
  [[nodiscard]] static std::string format_rate(double steps_per_second) {
    if (steps_per_second <= 0) return "? it/s";
    if (steps_per_second < 1) return detail::progress::format("%.1f s/it", 1.0 / steps_per_second);
    return detail::progress::format("%.1f it/s", steps_per_second);
  }

private:
  [[nodiscard]] std::string eta_text() const {
    const auto eta = eta_seconds();
    return eta ? format_duration(*eta) : "--:--";
  }
  [[nodiscard]] std::string percent() const {
    return std::to_string(std::clamp<std::int64_t>(step_ * 100 / total_, 0, 100)) + "%";
  }
  // " loss 0.6931 x 1.5" with (sep, eq) = ("  ", " "); metrics [0, count).
  [[nodiscard]] std::string metrics_text(const char* sep, const char* eq, std::size_t count = SIZE_MAX) const {
    std::string s;
    for (std::size_t i = 0; i < std::min(count, metrics_.size()); ++i)
      s += detail::progress::cat({sep, metrics_[i].first, eq, detail::progress::format("%.4g", metrics_[i].second)});
    return s;
  }

  [[nodiscard]] std::string plain_line() const {
    using detail::progress::cat;
    std::string s = cat({"step ", std::to_string(step_)});
    if (total_ > 0) s += cat({"/", std::to_string(total_), " (", percent(), ")"});
    s += cat({" ", format_rate(rate())});
    if (total_ > 0) s += cat({" eta ", eta_text()});
    return s + metrics_text(" ", "=");
  }

  void draw(double now) {
    const auto width = static_cast<std::size_t>(std::max(columns_ - 1, 1));
    using detail::progress::cat;
    std::string info = std::to_string(step_);
    if (total_ > 0) info += cat({"/", std::to_string(total_), "  ", percent()});
    info += cat({"  ", format_rate(rate())});
    if (total_ > 0) info += cat({"  ETA ", eta_text()});
    constexpr std::size_t min_bar = 10;
    std::size_t shown = metrics_.size();
    auto fixed = [&] { return info.size() + metrics_text("  ", " ", shown).size() + (total_ > 0 ? 3 : 0); };
    while (shown > 0 && fixed() + (total_ > 0 ? min_bar : 0) > width) --shown;
    std::string line;
    if (total_ > 0 && fixed() + min_bar <= width) {
      const std::size_t bar = width - fixed();
      const auto filled = static_cast<std::size_t>(
          static_cast<double>(bar) * static_cast<double>(std::clamp<std::int64_t>(step_, 0, total_)) / static_cast<double>(total_));
      line = cat({"[", std::string(filled, '#'), std::string(bar - filled, '.'), "] "});
    }
    line += info + metrics_text("  ", " ", shown);
    if (line.size() > width) line.resize(width);
    const std::size_t length = line.size();
    if (length < static_cast<std::size_t>(drawn_)) line += std::string(static_cast<std::size_t>(drawn_) - length, ' ');
    out_ << '\r' << line << std::flush;
    drawn_ = static_cast<int>(length);
    last_draw_time_ = now;
  }

  std::ostream& out_;
  std::int64_t total_;
  progress_options options_;
  bool terminal_ = false, finished_ = false;
  int columns_ = 80, drawn_ = 0; // drawn_: length of the bar line on screen (0: none)
  double start_time_ = 0, last_time_ = 0, last_print_time_ = 0, last_draw_time_ = 0;
  std::int64_t step_ = 0, last_step_ = 0, last_print_step_ = 0;
  double ema_steps_ = 0, ema_seconds_ = 0;
  metric_values metrics_;
};

} // namespace prefopt::train
