#include "analysis/entropy.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "analysis/plot.h"
#include "core/error.h"

namespace aero::analysis {

double head_entropy(const float* probs, int T, int ld) {
  if (ld <= 0) ld = T;
  double total = 0;
  for (int i = 0; i < T; ++i) {
    const float* row = probs + static_cast<size_t>(i) * ld;
    double e = 0;
    for (int j = 0; j <= i; ++j) {
      double a = row[j];
      if (!std::isfinite(a)) return NAN;
      e -= a * std::log(a + kEntropyEps);
    }
    total += e;
  }
  return total / T;
}

double max_causal_entropy(int T) {
  AERO_CHECK(T > 0, "entropy: sequence length must be positive (got ", T, ")");
  return std::lgamma(T + 1.0) / T;
}

EntropyAccumulator::EntropyAccumulator(int n_layer, int n_head)
    : L_(n_layer),
      H_(n_head),
      sum_(n_layer, std::vector<double>(n_head, 0.0)),
      bad_samples_(n_layer, std::vector<int64_t>(n_head, 0)),
      nan_values_(n_layer, std::vector<int64_t>(n_head, 0)),
      samples_(n_layer, 0) {
  AERO_CHECK(n_layer > 0 && n_head > 0, "entropy: need at least one layer and head (got ", n_layer, " x ",
             n_head, ")");
}

void EntropyAccumulator::add_layer(int layer, const float* probs, int B, int T) {
  AERO_CHECK(layer >= 0 && layer < L_, "entropy: layer ", layer, " out of range [0, ", L_, ")");
  AERO_CHECK(probs != nullptr, "entropy: layer ", layer, " has no attention probabilities");
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H_; ++h) {
      const float* a = probs + (static_cast<size_t>(b) * H_ + h) * T * T;
      double e = head_entropy(a, T);
      if (!std::isfinite(e)) {
        ++bad_samples_[layer][h];
        for (int i = 0; i < T; ++i)
          for (int j = 0; j <= i; ++j)
            if (!std::isfinite(a[static_cast<size_t>(i) * T + j])) ++nan_values_[layer][h];
      } else {
        sum_[layer][h] += e;
      }
    }
  samples_[layer] += B;
}

Matrix EntropyAccumulator::mean() const {
  Matrix m(L_, std::vector<double>(H_, NAN));
  for (int l = 0; l < L_; ++l)
    for (int h = 0; h < H_; ++h)
      if (samples_[l] > 0 && bad_samples_[l][h] == 0) m[l][h] = sum_[l][h] / samples_[l];
  return m;
}

int entropy_bin(double e, double max) {
  if (!(max > 0)) return 0;
  int b = static_cast<int>(std::floor(4.0 * e / max));
  return std::clamp(b, 0, 3);
}

EntropySummary summarize_entropy(const Matrix& entropy, int T, int64_t nan_values, int64_t samples) {
  EntropySummary s;
  s.n_layer = static_cast<int>(entropy.size());
  AERO_CHECK(s.n_layer > 0, "entropy: empty entropy matrix");
  s.n_head = static_cast<int>(entropy[0].size());
  for (size_t l = 0; l < entropy.size(); ++l)
    AERO_CHECK(static_cast<int>(entropy[l].size()) == s.n_head, "entropy: layer ", l, " has ", entropy[l].size(),
               " heads, layer 0 has ", s.n_head);
  s.T = T;
  s.entropy = entropy;
  s.max_theoretical = max_causal_entropy(T);
  s.nan_values = nan_values;
  s.samples = samples;
  s.max_observed = 0;
  for (auto& row : entropy)
    for (double e : row)
      if (std::isfinite(e)) s.max_observed = std::max(s.max_observed, e);
  int64_t finite = 0;
  for (auto& row : entropy) {
    double sum = 0;
    int n = 0;
    for (double e : row) {
      if (!std::isfinite(e)) {
        ++s.nan_heads;
        continue;
      }
      sum += e;
      ++n;
      ++finite;
      ++s.bin_counts[entropy_bin(e, s.max_observed)];
    }
    s.layer_mean.push_back(n ? sum / n : NAN);
  }
  for (int b = 0; b < 4; ++b) s.bin_fractions[b] = finite ? double(s.bin_counts[b]) / finite : NAN;
  s.overload_fraction = s.bin_fractions[3];
  s.collapse_fraction = s.bin_fractions[0];
  return s;
}

std::array<std::string, 4> bin_labels() {
  return {"[0, Max/4)", "[Max/4, Max/2)", "[Max/2, 3Max/4)", "[3Max/4, Max]"};
}

std::array<std::string, 4> bin_ranges(double max) {
  std::array<std::string, 4> r;
  char buf[64];
  for (int b = 0; b < 4; ++b) {
    std::snprintf(buf, sizeof buf, "[%.2f, %.2f%s", max * b / 4, max * (b + 1) / 4, b == 3 ? "]" : ")");
    r[b] = buf;
  }
  return r;
}

namespace {
nlohmann::json finite_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
}  // namespace

nlohmann::json to_json(const EntropySummary& s) {
  nlohmann::json ent = nlohmann::json::array();
  for (auto& row : s.entropy) {
    nlohmann::json r = nlohmann::json::array();
    for (double e : row) r.push_back(finite_or_null(e));
    ent.push_back(r);
  }
  nlohmann::json lm = nlohmann::json::array();
  for (double v : s.layer_mean) lm.push_back(finite_or_null(v));
  auto labels = bin_labels();
  auto ranges = bin_ranges(s.max_observed);
  nlohmann::json bins = nlohmann::json::array();
  for (int b = 0; b < 4; ++b)
    bins.push_back({{"bin", labels[b]}, {"range", ranges[b]}, {"count", s.bin_counts[b]},
                    {"fraction", finite_or_null(s.bin_fractions[b])}});
  return {{"n_layer", s.n_layer},
          {"n_head", s.n_head},
          {"seq_len", s.T},
          {"samples", s.samples},
          {"entropy", ent},
          {"layer_mean", lm},
          {"max_observed", s.max_observed},
          {"max_theoretical", s.max_theoretical},
          {"bins", bins},
          {"overload_fraction", finite_or_null(s.overload_fraction)},
          {"collapse_fraction", finite_or_null(s.collapse_fraction)},
          {"nan_heads", s.nan_heads},
          {"nan_values", s.nan_values}};
}

std::string format_summary(const EntropySummary& s) {
  std::ostringstream o;
  char buf[128];
  o << "Mean attention entropy per head (nats), T=" << s.T;
  if (s.samples) o << ", " << s.samples << " sequences";
  o << "\n";
  std::snprintf(buf, sizeof buf, "%-6s", "layer");
  o << buf;
  for (int h = 0; h < s.n_head; ++h) {
    std::snprintf(buf, sizeof buf, " %6s", ("h" + std::to_string(h)).c_str());
    o << buf;
  }
  o << "    mean\n";
  for (int l = 0; l < s.n_layer; ++l) {
    std::snprintf(buf, sizeof buf, "%-6d", l);
    o << buf;
    for (double e : s.entropy[l]) {
      if (std::isfinite(e))
        std::snprintf(buf, sizeof buf, " %6.3f", e);
      else
        std::snprintf(buf, sizeof buf, " %6s", "NaN");
      o << buf;
    }
    std::snprintf(buf, sizeof buf, "  %6.3f\n", s.layer_mean[l]);
    o << buf;
  }
  std::snprintf(buf, sizeof buf, "Max observed %.3f nats; theoretical max ln(T!)/T = %.3f nats\n", s.max_observed,
                s.max_theoretical);
  o << buf;
  auto labels = bin_labels();
  auto ranges = bin_ranges(s.max_observed);
  for (int b = 0; b < 4; ++b) {
    std::snprintf(buf, sizeof buf, "  bin %-16s %-16s %4lld heads  %5.1f%%\n", labels[b].c_str(), ranges[b].c_str(),
                  (long long)s.bin_counts[b], 100 * s.bin_fractions[b]);
    o << buf;
  }
  std::snprintf(buf, sizeof buf, "entropic overload (top bin) %.1f%%, entropy collapse (bottom bin) %.1f%%\n",
                100 * s.overload_fraction, 100 * s.collapse_fraction);
  o << buf;
  o << "NaN: " << s.nan_heads << " heads, " << s.nan_values << " attention values\n";
  return o.str();
}

std::array<double, 4> paper_entropy_bins(const std::string& a) {
  if (a == "SM+LN+G") return {4, 14, 74, 8};
  if (a == "SM+LN+R") return {6, 16, 74, 3};
  if (a == "SM+G") return {1, 18, 23, 58};
  if (a == "SM+R") return {3, 20, 53, 24};
  if (a == "SM") return {33, NAN, NAN, 45};
  return {NAN, NAN, NAN, NAN};
}

std::vector<std::string> plot_entropy(const EntropySummary& s, const std::string& base_dir,
                                      const std::string& run_name, bool png, const std::array<double, 4>& reference,
                                      const std::string& reference_name) {
  std::vector<std::string> out;
  Heatmap h;
  h.title = "Attention entropy per head" + (run_name.empty() ? "" : " - " + run_name);
  char buf[200];
  std::string over = s.samples > 0 ? ", mean over " + std::to_string(s.samples) + " sequences" : "";
  std::snprintf(buf, sizeof buf, "T=%d%s; max observed %.2f, ln(T!)/T = %.2f nats", s.T, over.c_str(),
                s.max_observed, s.max_theoretical);
  h.subtitle = buf;
  h.x_label = "head";
  h.y_label = "layer";
  h.colorbar_label = "entropy (nats)";
  h.rows = s.n_layer;
  h.cols = s.n_head;
  for (auto& row : s.entropy) h.values.insert(h.values.end(), row.begin(), row.end());
  h.vmin = 0;
  h.vmax = s.max_theoretical;  // the same scale for every model: comparable across runs
  for (double v : h.values)
    if (std::isfinite(v)) h.vmax = std::max(h.vmax, v);
  auto a = write_plot(render_svg(h), base_dir + "/entropy_heatmap", png);
  out.insert(out.end(), a.begin(), a.end());

  BarChart b;
  b.title = "Heads per entropy bin" + (run_name.empty() ? "" : " - " + run_name);
  std::snprintf(buf, sizeof buf, "bins relative to Max = %.2f nats (largest observed head entropy); %lld NaN heads",
                s.max_observed, (long long)s.nan_heads);
  b.subtitle = buf;
  b.x_label = "entropy bin";
  b.y_label = "heads (%)";
  auto labels = bin_labels();
  auto ranges = bin_ranges(s.max_observed);
  for (int i = 0; i < 4; ++i) b.categories.push_back(labels[i] + "\n" + ranges[i]);
  BarSeries bs{"measured", {}, ""};
  for (int i = 0; i < 4; ++i) bs.values.push_back(100 * s.bin_fractions[i]);
  b.series.push_back(bs);
  if (std::any_of(reference.begin(), reference.end(), [](double v) { return std::isfinite(v); }))
    b.series.push_back({reference_name.empty() ? "reference" : reference_name,
                        std::vector<double>(reference.begin(), reference.end()), "#9a9a9a"});
  b.value_suffix = "%";
  auto c = write_plot(render_svg(b), base_dir + "/entropy_bins", png);
  out.insert(out.end(), c.begin(), c.end());
  return out;
}

}  // namespace aero::analysis
