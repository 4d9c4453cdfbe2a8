// Tests for prefopt/train/progress.hpp, with a fake clock and a string stream.
// Expected lines are worked out by hand from the format in the header: e.g. 40 steps per 10 s gives
// 4.0 it/s, and 880 steps left at 4 it/s is 220 s = "03:40"; the EMA reference values are computed
// below with tqdm's formula (ema = a*x + (1-a)*ema for steps and seconds separately, a = 0.3).
#include "prefopt/train/progress.hpp"

#include <doctest/doctest.h>

#include <sstream>
#include <stdlib.h>

using namespace prefopt::train;

namespace {

struct fake_clock {
  double now = 0;
  std::function<double()> fn() { return [this] { return now; }; }
};

progress_options opts(fake_clock& c, bool terminal, int columns = 80) {
  progress_options o;
  o.clock = c.fn();
  o.is_terminal = terminal;
  o.columns = columns;
  return o;
}

// What the terminal shows: the text after the last carriage return of the last line.
std::string screen_line(const std::string& out) {
  const auto nl = out.rfind('\n');
  const std::string tail = nl == std::string::npos ? out : out.substr(nl + 1);
  return tail.substr(tail.rfind('\r') + 1);
}

} // namespace

TEST_CASE("durations and rates") {
  CHECK(progress::format_duration(0) == "00:00");
  CHECK(progress::format_duration(258) == "04:18");
  CHECK(progress::format_duration(59.6) == "01:00");
  CHECK(progress::format_duration(3599.6) == "1:00:00");
  CHECK(progress::format_duration(3723) == "1:02:03");
  CHECK(progress::format_duration(36000) == "10:00:00");
  CHECK(progress::format_rate(3.4) == "3.4 it/s");
  CHECK(progress::format_rate(0.25) == "4.0 s/it");
  CHECK(progress::format_rate(0) == "? it/s");
}

TEST_CASE("plain lines every N steps or T seconds, and a summary") {
  fake_clock clock;
  std::ostringstream out;
  auto o = opts(clock, false);
  o.every_steps = 10;
  o.every_seconds = 30;
  progress p(out, 100, o);
  CHECK_FALSE(p.is_terminal());
  for (int s = 1; s <= 10; ++s) {
    clock.now = 0.5 * s; // 2 steps per second throughout: the EMA ratio is exactly 2
    p.update(s, {{"loss", 0.693147}, {"rewards/margins", 0.123456}});
  }
  CHECK(out.str() == "step 10/100 (10%) 2.0 it/s eta 00:45 loss=0.6931 rewards/margins=0.1235\n");
  CHECK(p.rate() == doctest::Approx(2.0));

  // a slow step moves the average: tqdm's EMA of steps and of seconds
  double ema_n = 0, ema_t = 0;
  for (int s = 1; s <= 10; ++s) ema_n = 0.3 + 0.7 * ema_n, ema_t = 0.3 * 0.5 + 0.7 * ema_t;
  ema_n = 0.3 * 1 + 0.7 * ema_n;
  ema_t = 0.3 * 2.0 + 0.7 * ema_t;
  clock.now = 7.0;
  p.update(11);
  CHECK(p.rate() == doctest::Approx(ema_n / ema_t));
  CHECK(*p.eta_seconds() == doctest::Approx(89 / (ema_n / ema_t)));
  CHECK(out.str().find("step 11") == std::string::npos); // 1 step and 2 s since the last line

  out.str("");
  clock.now = 40.0; // 35 s since the last line: printed though only 2 steps passed
  p.update(12, {{"loss", 0.5}});
  const double r = (0.3 * 1 + 0.7 * ema_n) / (0.3 * 33.0 + 0.7 * ema_t);
  char expected[128];
  std::snprintf(expected, sizeof expected, "step 12/100 (12%%) %s eta %s loss=0.5\n", progress::format_rate(r).c_str(),
                progress::format_duration(88 / r).c_str());
  CHECK(out.str() == expected);
  CHECK(out.str() == "step 12/100 (12%) 10.7 s/it eta 15:42 loss=0.5\n"); // the same: r = 0.0934 it/s, 88 / r = 942 s

  out.str("");
  clock.now = 50.0;
  p.update(100); // the last step always prints
  CHECK(out.str().starts_with("step 100/100 (100%) "));
  CHECK(out.str().ends_with(" eta 00:00 loss=0.5\n"));
  out.str("");
  clock.now = 258.0;
  p.finish({{"loss", 0.25}});
  CHECK(out.str() == "done 100/100 steps in 04:18 (2.6 s/it) loss=0.25\n"); // 258 s / 100 steps
  p.finish();
  CHECK(out.str() == "done 100/100 steps in 04:18 (2.6 s/it) loss=0.25\n"); // once
}

TEST_CASE("terminal: one line redrawn in place, width adapts") {
  fake_clock clock;
  std::ostringstream out;
  progress p(out, 1000, opts(clock, true, 80));
  CHECK(p.is_terminal());
  for (int s = 40; s <= 120; s += 40) {
    clock.now += 10;
    p.update(s, {{"loss", 0.693147}});
  }
  CHECK(out.str().find('\n') == std::string::npos);
  CHECK(out.str().front() == '\r');
  // 79 columns: 29 for the bar, 3 of them filled (12%)
  const std::string line = "[###..........................] 120/1000  12%  4.0 it/s  ETA 03:40  loss 0.6931";
  CHECK(line.size() == 79);
  CHECK(screen_line(out.str()) == line);
  CHECK(out.str().size() == 3 * 80); // three draws of "\r" + 79 columns

  // 60 columns: the metric no longer fits beside a 10-column bar and is left off
  std::ostringstream narrow;
  fake_clock c2;
  progress q(narrow, 1000, opts(c2, true, 60));
  c2.now = 30;
  q.update(120, {{"loss", 0.693147}});
  CHECK(screen_line(narrow.str()) == "[##....................] 120/1000  12%  4.0 it/s  ETA 03:40");
  // 20 columns: no room for a bar either; the text is cut at 19
  std::ostringstream tiny;
  fake_clock c3;
  progress t(tiny, 1000, opts(c3, true, 20));
  c3.now = 30;
  t.update(120);
  CHECK(screen_line(tiny.str()) == "120/1000  12%  4.0 ");
}

TEST_CASE("terminal: throttled redraws, padding, messages, summary") {
  fake_clock clock;
  std::ostringstream out;
  progress p(out, 10, opts(clock, true, 50));
  clock.now = 1;
  p.update(1, {{"loss", 0.693147}, {"acc", 0.5}});
  const auto first = out.str();
  clock.now = 1.05; // within redraw_seconds (0.1): not drawn
  p.update(2);
  CHECK(out.str() == first);
  clock.now = 2;
  p.update(3, {{"loss", 0.5}}); // shorter metrics: the line keeps the full width (the bar stretches)
  CHECK(screen_line(out.str()).size() == 49);
  p.message("eval_loss 0.4");
  const auto s = out.str();
  CHECK(s.find("\r" + std::string(49, ' ') + "\reval_loss 0.4\n\r[") != std::string::npos);
  out.str("");
  clock.now = 5;
  p.finish();
  // redrawn at 3/10 (the last update), then the summary: 3 steps in 5 s
  CHECK(out.str().ends_with("\ndone 3/10 steps in 00:05 (1.7 s/it) loss=0.5\n"));
  CHECK(out.str().starts_with("\r["));
}

TEST_CASE("unknown total, resumed start, detection") {
  fake_clock clock;
  std::ostringstream out;
  auto o = opts(clock, false);
  o.initial_step = 100;
  o.every_steps = 5;
  progress p(out, 0, o);
  clock.now = 2.5;
  p.update(105, {{"loss", 1.0}});
  CHECK(out.str() == "step 105 2.0 it/s loss=1\n");
  clock.now = 5;
  p.finish();
  CHECK(out.str().ends_with("done 105 steps in 00:05 (1.0 it/s) loss=1\n"));
  CHECK_FALSE(p.eta_seconds().has_value());

  std::ostringstream tout;
  fake_clock c2;
  auto o2 = opts(c2, true, 40);
  o2.initial_step = 100;
  progress t(tout, 0, o2);
  c2.now = 2.5;
  t.update(105, {{"loss", 1.0}});
  CHECK(screen_line(tout.str()) == "105  2.0 it/s  loss 1");

  // detection: a string stream is never a terminal; COLUMNS sets the width
  ::setenv("COLUMNS", "123", 1);
  std::ostringstream s;
  progress d(s, 10);
  CHECK_FALSE(d.is_terminal());
  CHECK(d.columns() == 123);
  ::setenv("COLUMNS", "junk", 1);
  progress e(s, 10);
  CHECK(e.columns() == 80); // a string stream has no terminal size to ask for
  ::unsetenv("COLUMNS");
}
