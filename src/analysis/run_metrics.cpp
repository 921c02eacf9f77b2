#include "analysis/run_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"

namespace aero::analysis {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A number field: absent -> NaN, null -> NaN (NaN written by nlohmann), else must be a number.
double num(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return NAN;
  AERO_CHECK(it->is_number(), where, ": field \"", key, "\" must be a number (got ", it->dump(), ")");
  return it->get<double>();
}

Matrix entropy_matrix(const json& e, const std::string& where) {
  AERO_CHECK(e.is_array(), where, ": field \"entropy\" must be an array of layers ([[H floats] x L])");
  Matrix m;
  for (size_t l = 0; l < e.size(); ++l) {
    AERO_CHECK(e[l].is_array(), where, ": entropy[", l, "] must be an array of head entropies");
    std::vector<double> row;
    for (size_t h = 0; h < e[l].size(); ++h) {
      const json& v = e[l][h];
      AERO_CHECK(v.is_number() || v.is_null(), where, ": entropy[", l, "][", h, "] must be a number");
      row.push_back(v.is_null() ? NAN : v.get<double>());
    }
    AERO_CHECK(m.empty() || row.size() == m[0].size(), where, ": entropy[", l, "] has ", row.size(),
               " heads, entropy[0] has ", m.empty() ? 0 : m[0].size());
    m.push_back(std::move(row));
  }
  return m;
}

std::vector<double> ema(const std::vector<double>& v, double beta) {
  std::vector<double> out;
  double s = NAN, w = 0;
  for (double x : v) {
    if (std::isfinite(x)) {
      s = std::isfinite(s) ? beta * s + (1 - beta) * x : (1 - beta) * x;
      w = beta * w + (1 - beta);
    }
    out.push_back(std::isfinite(x) && w > 0 ? s / w : NAN);  // bias-corrected, NaN gaps kept
  }
  return out;
}

bool any_finite_nonzero(const std::vector<double>& v) {
  return std::any_of(v.begin(), v.end(), [](double x) { return std::isfinite(x) && x != 0; });
}

std::string events_note(const RunMetrics& m) {
  if (m.events.empty()) return "";
  std::ostringstream o;
  o << "stopped: non-finite at step " << static_cast<long long>(m.events.back().first);
  if (!m.events.back().second.empty()) o << " (" << m.events.back().second << ")";
  return o.str();
}

std::string with_run(const std::string& title, const std::string& run) {
  return run.empty() ? title : title + " - " + run;
}

}  // namespace

RunMetrics read_metrics(const std::string& path_or_run_dir) {
  std::string path = path_or_run_dir;
  if (fs::is_directory(path)) path = (fs::path(path) / "metrics.jsonl").string();
  AERO_CHECK(fs::exists(path), "metrics log not found: ", path,
             " (expected RUN_DIR/metrics.jsonl written by aero train --out RUN_DIR)");
  RunMetrics m;
  m.path = path;
  std::istringstream in(read_file(path));
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    std::string where = path + ":" + std::to_string(n);
    if (line.find_first_not_of(" \t\r") == std::string::npos) {
      ++m.skipped_lines;
      continue;
    }
    json j;
    try {
      j = json::parse(line);
    } catch (const json::parse_error& e) {
      fail(where, ": not valid JSON (", e.what(), ")");
    }
    AERO_CHECK(j.is_object(), where, ": expected one JSON object per line");
    double step = num(j, "step", where);
    AERO_CHECK(std::isfinite(step), where, ": record has no numeric \"step\"");
    if (j.contains("event")) {
      m.events.emplace_back(step, j.value("where", std::string()));
      continue;
    }
    if (j.contains("split") || j.contains("val_loss")) {
      m.eval_step.push_back(step);
      m.val_loss.push_back(num(j, "val_loss", where));
      double ppl = num(j, "val_ppl", where);
      if (!std::isfinite(ppl) && std::isfinite(m.val_loss.back())) ppl = std::exp(m.val_loss.back());
      m.val_ppl.push_back(ppl);
      m.eval_entropy.push_back(j.contains("entropy") && !j["entropy"].is_null() ? entropy_matrix(j["entropy"], where)
                                                                               : Matrix{});
      continue;
    }
    m.step.push_back(step);
    m.loss.push_back(num(j, "loss", where));
    m.ce.push_back(num(j, "ce", where));
    m.ent_reg.push_back(num(j, "ent_reg", where));
    m.lr.push_back(num(j, "lr", where));
    m.grad_norm.push_back(num(j, "grad_norm", where));
    m.tokens_per_s.push_back(num(j, "tokens_per_s", where));
    m.elapsed_s.push_back(num(j, "elapsed_s", where));
  }
  return m;
}

LineChart layer_entropy_chart(const RunMetrics& m, const std::string& run_name, int seq_len) {
  LineChart c;
  c.title = with_run("Mean attention entropy per layer", run_name);
  c.subtitle = "mean over heads at each evaluation (validation split)";
  c.x_label = "step";
  c.y_label = "entropy (nats)";
  size_t L = 0;
  for (auto& e : m.eval_entropy) L = std::max(L, e.size());
  for (size_t l = 0; l < L; ++l) {
    Series s;
    s.name = "layer " + std::to_string(l);
    s.color = ramp_color(L > 1 ? 0.9 * double(l) / double(L - 1) : 0.0);  // dark = first layer
    s.markers = m.eval_step.size() <= 30;
    for (size_t i = 0; i < m.eval_step.size(); ++i) {
      const Matrix& e = m.eval_entropy[i];
      double v = NAN;
      if (l < e.size()) {
        double sum = 0;
        int n = 0;
        bool bad = false;
        for (double x : e[l]) {
          if (!std::isfinite(x)) bad = true;
          sum += x;
          ++n;
        }
        v = bad || n == 0 ? NAN : sum / n;
      }
      s.x.push_back(m.eval_step[i]);
      s.y.push_back(v);
    }
    c.series.push_back(std::move(s));
  }
  if (seq_len > 0 && !m.eval_step.empty()) {
    double mx = max_causal_entropy(seq_len);
    char buf[64];
    std::snprintf(buf, sizeof buf, "max ln(T!)/T = %.3f (T=%d)", mx, seq_len);
    c.series.push_back({buf, {m.eval_step.front(), m.eval_step.back()}, {mx, mx}, "#888888", true, false});
  }
  return c;
}

std::vector<std::string> plot_run(const RunMetrics& m, const std::string& out_dir, const std::string& run_name,
                                  int seq_len, bool png) {
  std::vector<std::string> out;
  auto add = [&](const std::string& svg, const std::string& name) {
    auto f = write_plot(svg, out_dir + "/" + name, png);
    out.insert(out.end(), f.begin(), f.end());
  };
  std::string note = events_note(m);

  {  // loss
    LineChart c;
    c.title = with_run("Loss", run_name);
    c.subtitle = note;
    c.x_label = "step";
    c.y_label = "loss (nats/token)";
    bool smooth = m.step.size() > 50;
    c.series.push_back({smooth ? "train loss (raw)" : "train loss", m.step, m.loss, smooth ? "#9dbbe0" : "", false,
                        false});
    if (smooth) c.series.push_back({"train loss (EMA 0.9)", m.step, ema(m.loss, 0.9), palette_color(0), false, false});
    if (any_finite_nonzero(m.ent_reg))  // the regularizer is on: show CE apart from CE + lambda L_ent
      c.series.push_back({"train CE", m.step, smooth ? ema(m.ce, 0.9) : m.ce, palette_color(2), true, false});
    if (!m.eval_step.empty())
      c.series.push_back({"validation CE", m.eval_step, m.val_loss, palette_color(1), false, m.eval_step.size() <= 40});
    add(render_svg(c), "loss");
  }
  {  // perplexity
    LineChart c;
    c.title = with_run("Validation perplexity", run_name);
    c.subtitle = note.empty() ? "exp(mean validation cross-entropy)" : note;
    c.x_label = "step";
    c.y_label = "perplexity";
    double lo = INFINITY, hi = 0;
    for (double p : m.val_ppl)
      if (std::isfinite(p) && p > 0) lo = std::min(lo, p), hi = std::max(hi, p);
    c.log_y = hi > 0 && hi / lo > 10;
    c.series.push_back({"validation perplexity", m.eval_step, m.val_ppl, palette_color(1), false,
                        m.eval_step.size() <= 40});
    add(render_svg(c), "perplexity");
  }
  {  // learning rate
    LineChart c;
    c.title = with_run("Learning rate", run_name);
    c.x_label = "step";
    c.y_label = "learning rate";
    c.series.push_back({"", m.step, m.lr, palette_color(0), false, false});
    add(render_svg(c), "lr");
  }
  add(render_svg(layer_entropy_chart(m, run_name, seq_len)), "entropy_layers");
  // The last evaluation's per-head entropies, like `aero entropy`.
  if (!m.eval_entropy.empty() && !m.eval_entropy.back().empty() && seq_len > 0) {
    auto s = summarize_entropy(m.eval_entropy.back(), seq_len);
    std::string label = (run_name.empty() ? "" : run_name + ", ") + "step " +
                        std::to_string(static_cast<long long>(m.eval_step.back()));
    auto f = plot_entropy(s, out_dir, label, png);
    out.insert(out.end(), f.begin(), f.end());
  }
  return out;
}

}  // namespace aero::analysis
