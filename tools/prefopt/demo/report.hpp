// tools/prefopt/demo/report.hpp — the demo's outputs: a reward-vs-KL table, results.csv, and
// reward_vs_kl.svg (written by hand: axes with ticks and labels, error bars of one standard error,
// one marker shape and color per loss, β (or an iterative round) next to each point, π_ref at KL 0,
// a legend).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "demo/stages.hpp"

namespace prefopt::cli::demo {

struct run_result {
  run_spec spec;            // spec.loss == "sft" for π_ref
  train_summary train;
  eval_result eval;
  double seconds = 0.0;     // training + evaluation
  bool is_reference() const { return spec.loss == "sft"; }
  std::string label() const { return is_reference() ? "pi_ref (sft)" : spec.name(); }
};

inline std::string format(const char* fmt, double a) {
  char b[64];
  std::snprintf(b, sizeof b, fmt, a);
  return b;
}

inline std::string table(const std::vector<run_result>& rows) {
  std::ostringstream o;
  char line[256];
  std::snprintf(line, sizeof line, "%-16s %6s %5s %9s %7s %8s %7s %7s %8s %8s\n", "run", "beta", "eps", "reward", "+-se",
                "KL", "+-se", "length", "acc", "loss");
  o << line << std::string(std::string(line).size() - 1, '-') << "\n";
  for (const auto& r : rows) {
    const bool ref = r.is_reference();
    std::snprintf(line, sizeof line, "%-16s %6s %5s %9.3f %7.3f %8.3f %7.3f %7.2f %8s %8s\n", r.label().c_str(),
                  ref ? "-" : format("%g", r.spec.beta).c_str(), r.spec.loss == "cdpo" ? format("%g", r.spec.label_smoothing).c_str() : "-",
                  r.eval.reward, r.eval.reward_se, r.eval.kl, r.eval.kl_se, r.eval.length,
                  ref ? "-" : format("%.3f", r.train.final_accuracy).c_str(), ref ? "-" : format("%.4f", r.train.final_loss).c_str());
    o << line;
  }
  return o.str();
}

inline std::string csv(const std::vector<run_result>& rows) {
  std::ostringstream o;
  o << "run,loss,beta,label_smoothing,reward,reward_se,kl,kl_se,mean_length,stop_rate,train_steps,final_loss,"
       "final_accuracy,final_margin,seconds\n";
  for (const auto& r : rows) {
    char b[512];
    std::snprintf(b, sizeof b, "%s,%s,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%d,%.17g,%.17g,%.17g,%.3f\n",
                  r.label().c_str(), r.spec.loss.c_str(), r.is_reference() ? 0.0 : r.spec.beta, r.spec.label_smoothing,
                  r.eval.reward, r.eval.reward_se, r.eval.kl, r.eval.kl_se, r.eval.length, r.eval.stop_rate, r.train.steps,
                  r.train.final_loss, r.train.final_accuracy, r.train.final_margin, r.seconds);
    o << b;
  }
  return o.str();
}

namespace detail {
// Tick positions: a 1-2-5 step giving about `target` intervals over [lo, hi].
inline std::vector<double> ticks(double lo, double hi, int target = 6) {
  const double raw = (hi - lo) / target, mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * mag) {
      step = m * mag;
      break;
    }
  std::vector<double> t;
  for (double x = std::ceil(lo / step - 1e-9) * step; x <= hi + 1e-9 * step; x += step) t.push_back(std::abs(x) < 1e-12 ? 0.0 : x);
  return t;
}
inline std::string num(double x) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", x);
  return b;
}
inline std::string fixed(double x, int digits = 1) {
  char b[32];
  std::snprintf(b, sizeof b, "%.*f", digits, x);
  return b;
}
struct style {
  const char* color;
  const char* title;
};
inline style style_of(const std::string& loss) {
  if (loss == "dpo") return {"#1f77b4", "DPO (sigmoid)"};
  if (loss == "ipo") return {"#d95f02", "IPO"};
  if (loss == "cdpo") return {"#1b9e77", "conservative DPO"};
  if (loss == "iter") return {"#7570b3", "iterative DPO"};
  if (loss == "iter_rm") return {"#e7298a", "iterative, RM judge"};
  return {"#222222", "\u03c0_ref (SFT)"};
}
// A marker centred at (x, y): circle (dpo), square (ipo), triangle (cdpo), diamond (π_ref).
inline std::string marker(const std::string& loss, double x, double y, double r = 5.5) {
  const style s = style_of(loss);
  std::ostringstream o;
  const std::string paint = std::string(" fill=\"") + s.color + "\" stroke=\"white\" stroke-width=\"1\"";
  if (loss == "dpo") o << "<circle cx=\"" << fixed(x) << "\" cy=\"" << fixed(y) << "\" r=\"" << r << "\"" << paint << "/>";
  else if (loss == "ipo")
    o << "<rect x=\"" << fixed(x - r) << "\" y=\"" << fixed(y - r) << "\" width=\"" << 2 * r << "\" height=\"" << 2 * r << "\"" << paint << "/>";
  else if (loss == "iter" || loss == "iter_rm")  // a triangle pointing down
    o << "<polygon points=\"" << fixed(x) << "," << fixed(y + 1.2 * r) << " " << fixed(x - 1.1 * r) << "," << fixed(y - 0.8 * r) << " "
      << fixed(x + 1.1 * r) << "," << fixed(y - 0.8 * r) << "\"" << paint << "/>";
  else if (loss == "cdpo")
    o << "<polygon points=\"" << fixed(x) << "," << fixed(y - 1.2 * r) << " " << fixed(x - 1.1 * r) << "," << fixed(y + 0.8 * r) << " "
      << fixed(x + 1.1 * r) << "," << fixed(y + 0.8 * r) << "\"" << paint << "/>";
  else
    o << "<polygon points=\"" << fixed(x) << "," << fixed(y - 1.3 * r) << " " << fixed(x + 1.3 * r) << "," << fixed(y) << " " << fixed(x)
      << "," << fixed(y + 1.3 * r) << " " << fixed(x - 1.3 * r) << "," << fixed(y) << "\"" << paint << "/>";
  return o.str();
}
} // namespace detail

inline std::string svg(const std::vector<run_result>& rows, const std::string& subtitle) {
  using namespace detail;
  const double W = 760, H = 500, left = 78, right = 200, top = 56, bottom = 62;
  const double pw = W - left - right, ph = H - top - bottom;
  double kmax = 0.0, rmin = 1e9, rmax = -1e9;
  for (const auto& r : rows) {
    kmax = std::max(kmax, r.eval.kl + r.eval.kl_se);
    rmin = std::min(rmin, r.eval.reward - r.eval.reward_se);
    rmax = std::max(rmax, r.eval.reward + r.eval.reward_se);
  }
  const double kmin = std::min(0.0, [&] {
    double m = 0.0;
    for (const auto& r : rows) m = std::min(m, r.eval.kl - r.eval.kl_se);
    return m;
  }());
  kmax = std::max(kmax * 1.08, kmin + 1e-3);
  const double kpad = 0.03 * (kmax - kmin);
  const double pad = std::max(0.05, 0.08 * (rmax - rmin));
  rmin -= pad, rmax += pad;
  const auto xt = ticks(kmin, kmax), yt = ticks(rmin, rmax);
  const double x0 = std::min(kmin, xt.front()) - kpad, x1 = std::max(kmax, xt.back());
  const double y0 = std::min(rmin, yt.front()), y1 = std::max(rmax, yt.back());
  auto X = [&](double k) { return left + (k - x0) / (x1 - x0) * pw; };
  auto Y = [&](double r) { return top + (1.0 - (r - y0) / (y1 - y0)) * ph; };

  std::ostringstream o;
  o << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" viewBox=\"0 0 " << W << " " << H
    << "\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    << "<text x=\"" << left << "\" y=\"24\" font-size=\"16\" font-weight=\"bold\">Reward vs KL(\u03c0 \u2016 \u03c0_ref) on held-out prompts</text>\n"
    << "<text x=\"" << left << "\" y=\"42\" fill=\"#555\">" << subtitle << "</text>\n";
  // grid, ticks and tick labels
  for (double t : xt) {
    o << "<line x1=\"" << fixed(X(t)) << "\" y1=\"" << top << "\" x2=\"" << fixed(X(t)) << "\" y2=\"" << top + ph
      << "\" stroke=\"#e5e5e5\"/>\n"
      << "<line x1=\"" << fixed(X(t)) << "\" y1=\"" << top + ph << "\" x2=\"" << fixed(X(t)) << "\" y2=\"" << top + ph + 5
      << "\" stroke=\"black\"/>\n"
      << "<text x=\"" << fixed(X(t)) << "\" y=\"" << top + ph + 19 << "\" text-anchor=\"middle\">" << num(t) << "</text>\n";
  }
  for (double t : yt) {
    o << "<line x1=\"" << left << "\" y1=\"" << fixed(Y(t)) << "\" x2=\"" << left + pw << "\" y2=\"" << fixed(Y(t))
      << "\" stroke=\"#e5e5e5\"/>\n"
      << "<line x1=\"" << left - 5 << "\" y1=\"" << fixed(Y(t)) << "\" x2=\"" << left << "\" y2=\"" << fixed(Y(t))
      << "\" stroke=\"black\"/>\n"
      << "<text x=\"" << left - 8 << "\" y=\"" << fixed(Y(t) + 4) << "\" text-anchor=\"end\">" << num(t) << "</text>\n";
  }
  o << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << pw << "\" height=\"" << ph
    << "\" fill=\"none\" stroke=\"black\"/>\n"
    << "<text x=\"" << left + pw / 2 << "\" y=\"" << H - 16
    << "\" text-anchor=\"middle\">KL(\u03c0 \u2016 \u03c0_ref) per continuation (nats), estimated from samples of \u03c0</text>\n"
    << "<text transform=\"translate(22," << top + ph / 2
    << ") rotate(-90)\" text-anchor=\"middle\">mean reward (lexicon polarity, \u22121 to 1)</text>\n";
  // one polyline per loss, in order of β (a frontier traced by the regularization strength); iterative DPO's in order of rounds
  std::map<std::string, std::vector<const run_result*>> by_loss;
  for (const auto& r : rows)
    if (!r.is_reference()) by_loss[r.spec.loss].push_back(&r);
  for (auto& [loss, v] : by_loss) {
    std::sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->spec.round != b->spec.round ? a->spec.round < b->spec.round : a->spec.beta < b->spec.beta; });
    o << "<polyline fill=\"none\" stroke=\"" << style_of(loss).color << "\" stroke-opacity=\"0.5\" stroke-dasharray=\"4 3\" points=\"";
    for (const auto* r : v) o << fixed(X(r->eval.kl)) << "," << fixed(Y(r->eval.reward)) << " ";
    o << "\"/>\n";
  }
  // error bars and markers, then β labels placed where they overlap no marker and no other label
  struct box {
    double x0, y0, x1, y1;
    bool hits(const box& o) const { return x0 < o.x1 && o.x0 < x1 && y0 < o.y1 && o.y0 < y1; }
  };
  std::vector<box> taken;
  for (const auto& r : rows) {
    const auto c = style_of(r.spec.loss).color;
    const double x = X(r.eval.kl), y = Y(r.eval.reward);
    o << "<g stroke=\"" << c << "\" stroke-opacity=\"0.6\">"
      << "<line x1=\"" << fixed(x) << "\" y1=\"" << fixed(Y(r.eval.reward - r.eval.reward_se)) << "\" x2=\"" << fixed(x) << "\" y2=\""
      << fixed(Y(r.eval.reward + r.eval.reward_se)) << "\"/>"
      << "<line x1=\"" << fixed(X(r.eval.kl - r.eval.kl_se)) << "\" y1=\"" << fixed(y) << "\" x2=\"" << fixed(X(r.eval.kl + r.eval.kl_se))
      << "\" y2=\"" << fixed(y) << "\"/></g>\n"
      << marker(r.spec.loss, x, y) << "\n";
    taken.push_back({x - 7, y - 7, x + 7, y + 7});
  }
  for (const auto& r : rows) {
    const double x = X(r.eval.kl), y = Y(r.eval.reward);
    const bool round = r.spec.loss == "iter" || r.spec.loss == "iter_rm";
    const std::string text = r.is_reference() ? "\u03c0_ref" : round ? "round " + std::to_string(r.spec.round) : "\u03b2=" + num(r.spec.beta);
    const double w = 6.2 * double(r.is_reference() ? 5 : round ? text.size() : text.size() - 1), h = 11;  // β is two bytes
    // candidate baselines: right-up, right-down, left-up, left-down, above, below
    const double cand[][2] = {{x + 8, y - 6}, {x + 8, y + 15}, {x - 8 - w, y - 6}, {x - 8 - w, y + 15}, {x - w / 2, y - 10}, {x - w / 2, y + 20}};
    box chosen{cand[0][0], cand[0][1] - h, cand[0][0] + w, cand[0][1]};
    for (const auto& c : cand) {
      const box b{c[0], c[1] - h, c[0] + w, c[1]};
      const bool inside = b.x0 >= left && b.x1 <= left + pw && b.y0 >= top && b.y1 <= top + ph;
      bool free = inside;
      for (const auto& t : taken) free = free && !b.hits(t);
      if (free) {
        chosen = b;
        break;
      }
    }
    taken.push_back(chosen);
    o << "<text x=\"" << fixed(chosen.x0) << "\" y=\"" << fixed(chosen.y1) << "\" font-size=\"11\" fill=\"" << style_of(r.spec.loss).color
      << "\">" << text << "</text>\n";
  }
  // legend
  const double lx = left + pw + 18;
  double ly = top + 10;
  std::vector<std::string> legend{"dpo", "ipo", "cdpo"};
  for (const char* it : {"iter", "iter_rm"})
    if (std::any_of(rows.begin(), rows.end(), [&](const run_result& r) { return r.spec.loss == it; })) legend.push_back(it);
  legend.push_back("sft");
  o << "<rect x=\"" << lx - 8 << "\" y=\"" << ly - 10 << "\" width=\"" << right - 24 << "\" height=\"" << 22 * double(legend.size()) + 34
    << "\" fill=\"white\" stroke=\"#999\"/>\n";
  for (const auto& loss : legend) {
    o << marker(loss, lx + 6, ly + 6) << "<text x=\"" << lx + 20 << "\" y=\"" << ly + 10 << "\">" << style_of(loss).title << "</text>\n";
    ly += 22;
  }
  o << "<text x=\"" << lx - 2 << "\" y=\"" << ly + 8 << "\" font-size=\"10\" fill=\"#555\">bars: \u00b11 standard error</text>\n";
  o << "</svg>\n";
  return o.str();
}

} // namespace prefopt::cli::demo
