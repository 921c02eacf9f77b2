#include "analysis/compare.h"

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

PiCost read_pi_cost(const std::string& path, const std::string& network) {
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::parse_error& e) {
    fail(path, ": not valid JSON (", e.what(), ")");
  }
  AERO_CHECK(j.is_object(), path, ": expected a JSON object with online_bytes, rounds, latency_s, ...");
  PiCost c;
  // The first of `keys` present: a number (>= 0), else an error naming the key.
  auto number = [&](std::initializer_list<const char*> keys, double& out) {
    for (const char* key : keys) {
      if (!j.contains(key) || j[key].is_null()) continue;
      AERO_CHECK(j[key].is_number(), path, ": \"", key, "\" must be a number (got ", j[key].dump(), ")");
      out = j[key].get<double>();
      AERO_CHECK(out >= 0, path, ": \"", key, "\" must not be negative (got ", out, ")");
      return;
    }
  };
  auto text = [&](const char* key, std::string& out) {
    if (!j.contains(key) || j[key].is_null()) return;
    AERO_CHECK(j[key].is_string(), path, ": \"", key, "\" must be a string (got ", j[key].dump(), ")");
    out = j[key].get<std::string>();
  };
  number({"online_bytes"}, c.online_bytes);
  number({"rounds"}, c.rounds);
  number({"offline_bytes", "key_bytes_per_party"}, c.offline_bytes);
  number({"keygen_s", "keygen_s_estimate"}, c.keygen_s);
  number({"tokens", "context"}, c.tokens);
  text("network", c.network);
  text("scope", c.scope);
  text("source", c.source);
  // latency_s: seconds, or {network profile: seconds} (aero pi bench). From an object take
  // `network` (the caller's, else the file's), else the paper's WAN profile, else the first.
  if (j.contains("latency_s") && j["latency_s"].is_object() && !j["latency_s"].empty()) {
    const json& lat = j["latency_s"];
    std::string want = !network.empty() ? network : c.network;
    std::string pick;
    if (!want.empty()) {
      AERO_CHECK(lat.contains(want), path, ": \"latency_s\" has no network profile '", want, "' (has: ",
                 [&] {
                   std::string all;
                   for (auto& [k, v] : lat.items()) all += (all.empty() ? "" : ", ") + k;
                   return all;
                 }(),
                 ")");
      pick = want;
    } else {
      pick = lat.contains("wan-100m-80ms") ? "wan-100m-80ms" : lat.begin().key();
    }
    AERO_CHECK(lat[pick].is_number(), path, ": \"latency_s\".\"", pick, "\" must be a number");
    c.latency_s = lat[pick].get<double>();
    c.network = pick;
  } else {
    number({"latency_s"}, c.latency_s);
  }
  return c;
}

model::RunConfig read_run_config(const std::string& path) {
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::parse_error& e) {
    fail(path, ": not valid JSON (", e.what(), ")");
  }
  return model::run_config_from_json(j, path);
}

std::string architecture_name(const model::ModelConfig& c) {
  using model::Activation;
  using model::FfnKind;
  std::string s = c.temperature ? "SM(t)" : "SM";
  if (c.norm == model::Norm::layernorm) s += "+LN";
  if (c.ffn_kind == FfnKind::standard) {
    switch (c.ffn_act) {
      case Activation::gelu: s += "+G"; break;
      case Activation::relu: s += "+R"; break;
      case Activation::leaky_relu:
      case Activation::learnable_leaky_relu: s += "+LR"; break;
      case Activation::identity: break;
    }
  }
  auto groups = [](const model::LinearGroups& g) {
    std::string attn = std::string(g.qk ? "qk" : "") + (g.v ? "v" : "") + (g.o ? "o" : "");
    if (g.ffn) attn += attn.empty() ? "ffn" : "+ffn";
    return attn;
  };
  if (c.weight_norm.any()) s += "+WN-" + groups(c.weight_norm);
  if (c.spectral_norm.any()) s += "+SN-" + groups(c.spectral_norm);
  if (c.ffn_kind == FfnKind::none)
    s += "+noFFN";
  else if (c.ffn_scaling)
    s += c.ffn_kind == FfnKind::fused ? "+ScFuFFN" : "+ScFFN";
  else if (c.ffn_kind == FfnKind::fused)
    s += "+FuFFN";
  if (c.entropy_reg.enabled) s = "EReg(" + s + ")";
  if (c.ffn_layers >= 0 && c.ffn_layers < c.n_layer && c.ffn_kind != FfnKind::none)
    s += "-k" + std::to_string(c.ffn_layers);
  return s;
}

RunSummary summarize_run(const std::string& run_dir, const std::string& pi_network) {
  RunSummary r;
  r.run_dir = run_dir;
  r.name = fs::path(run_dir).lexically_normal().filename().string();
  if (r.name.empty() || r.name == ".") r.name = fs::path(run_dir).lexically_normal().parent_path().filename().string();
  AERO_CHECK(fs::is_directory(run_dir), "run directory not found: ", run_dir);
  std::string cfg_path = (fs::path(run_dir) / "config.json").string();
  AERO_CHECK(fs::exists(cfg_path), "run ", run_dir, " has no config.json (expected the directory of aero train --out)");
  r.config = read_run_config(cfg_path);
  const auto& m = r.config.model;
  r.arch = architecture_name(m);
  r.shape = std::string(model::to_string(m.family)) + " L" + std::to_string(m.n_layer) + " H" +
            std::to_string(m.n_head) + " d" + std::to_string(m.d_model) + " T" + std::to_string(r.config.train.seq_len);
  r.flops = compute_flops(m, r.config.train.seq_len);

  if (fs::exists(fs::path(run_dir) / "metrics.jsonl")) {
    RunMetrics mt = read_metrics(run_dir);
    if (!mt.step.empty()) r.last_step = static_cast<int64_t>(mt.step.back());
    for (size_t i = 0; i < mt.eval_step.size(); ++i) {
      if (std::isfinite(mt.val_ppl[i]) && !(mt.val_ppl[i] >= r.best_val_ppl)) r.best_val_ppl = mt.val_ppl[i];
    }
    if (!mt.eval_step.empty()) {
      r.val_step = static_cast<int64_t>(mt.eval_step.back());
      r.val_ppl = mt.val_ppl.back();
      r.val_loss = mt.val_loss.back();
      if (!mt.eval_entropy.back().empty()) {
        auto s = summarize_entropy(mt.eval_entropy.back(), r.config.train.seq_len);
        r.overload = s.overload_fraction;
        r.collapse = s.collapse_fraction;
        r.bins = s.bin_fractions;
        r.nan_heads = s.nan_heads;
      }
    }
    if (!mt.events.empty())
      r.stopped = "non-finite at step " + std::to_string(static_cast<long long>(mt.events.back().first)) +
                  (mt.events.back().second.empty() ? "" : ": " + mt.events.back().second);
  }
  std::string pi_path = (fs::path(run_dir) / "pi.json").string();
  if (fs::exists(pi_path)) r.pi = read_pi_cost(pi_path, pi_network);
  return r;
}

namespace {

std::string num(double v, int decimals) {
  if (!std::isfinite(v)) return std::isnan(v) ? "" : "inf";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

struct Column {
  std::string md, csv;  // header in markdown (with units) and CSV (snake_case)
  bool right = true;
};

const std::vector<Column>& columns() {
  static const std::vector<Column> c = {
      {"run", "run", false},
      {"architecture", "architecture", false},
      {"model", "model", false},
      {"steps", "steps"},
      {"val PPL", "val_ppl"},
      {"best PPL", "best_val_ppl"},
      {"overload %", "entropy_overload_pct"},
      {"collapse %", "entropy_collapse_pct"},
      {"nonlinear ops", "nonlinear_ops", false},
      {"FFN FLOPs", "ffn_flops"},
      {"attn FLOPs", "attn_flops"},
      {"PI comm (GB)", "pi_online_gb"},
      {"PI rounds", "pi_rounds"},
      {"PI latency (s)", "pi_latency_s"},
      {"PI network", "pi_network", false},
      {"notes", "notes", false},
  };
  return c;
}

// One row of cells; `csv` chooses raw numbers (FLOPs as plain counts) over the table's
// formatted ones (FLOPs in billions).
std::vector<std::string> cells(const RunSummary& r, bool csv) {
  auto flops = [&](double f) { return csv ? num(f, 0) : format_flops(f); };
  std::string notes = r.stopped;
  if (r.nan_heads) notes += (notes.empty() ? "" : "; ") + std::to_string(r.nan_heads) + " NaN heads";
  if (r.pi && !r.pi->scope.empty()) notes += (notes.empty() ? "" : "; ") + std::string("PI scope ") + r.pi->scope;
  if (r.pi && !r.pi->source.empty()) notes += (notes.empty() ? "" : "; ") + std::string("PI ") + r.pi->source;
  return {r.name,
          r.arch,
          r.shape,
          std::to_string(r.last_step),
          num(r.val_ppl, csv ? 6 : 3),
          num(r.best_val_ppl, csv ? 6 : 3),
          num(100 * r.overload, 1),
          num(100 * r.collapse, 1),
          inventory_string(r.flops.inventory),
          flops(r.flops.ffn_flops),
          flops(r.flops.attn_flops),
          r.pi ? num(r.pi->online_bytes / 1e9, csv ? 6 : 3) : "",
          r.pi ? num(r.pi->rounds, 0) : "",
          r.pi ? num(r.pi->latency_s, csv ? 6 : 3) : "",
          r.pi ? r.pi->network : "",
          notes};
}

std::string csv_quote(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

}  // namespace

std::string compare_markdown(const std::vector<RunSummary>& runs) {
  std::ostringstream o;
  const auto& cols = columns();
  o << "|";
  for (auto& c : cols) o << " " << c.md << " |";
  o << "\n|";
  for (auto& c : cols) o << (c.right ? "---:|" : "---|");
  o << "\n";
  for (auto& r : runs) {
    o << "|";
    for (auto& cell : cells(r, false)) {
      std::string e;
      for (char ch : cell) e += ch == '|' ? std::string("\\|") : std::string(1, ch);
      o << " " << (e.empty() ? "-" : e) << " |";
    }
    o << "\n";
  }
  o << "\nFLOPs: one forward over T tokens, FLOPs = 2 x MACs, embedding and LM head excluded (B = 1e9, M = 1e6). "
       "Entropy bins relative to the largest head entropy of each run's last evaluation. "
       "PI columns from RUN_DIR/pi.json (online traffic, both directions).\n";
  return o.str();
}

std::string compare_csv(const std::vector<RunSummary>& runs) {
  std::ostringstream o;
  const auto& cols = columns();
  for (size_t i = 0; i < cols.size(); ++i) o << (i ? "," : "") << cols[i].csv;
  o << "\n";
  for (auto& r : runs) {
    auto cs = cells(r, true);
    for (size_t i = 0; i < cs.size(); ++i) o << (i ? "," : "") << csv_quote(cs[i]);
    o << "\n";
  }
  return o.str();
}

namespace {
std::string label(const RunSummary& r) { return r.name == r.arch ? r.name : r.name + " (" + r.arch + ")"; }
}  // namespace

std::vector<std::string> plot_compare(const std::vector<RunSummary>& runs, const std::vector<RunMetrics>& metrics,
                                      const std::string& out_dir, bool png) {
  AERO_CHECK(runs.size() == metrics.size(), "plot_compare: ", runs.size(), " runs but ", metrics.size(),
             " metrics logs");
  std::vector<std::string> out;
  LineChart c;
  c.title = "Validation perplexity";
  c.subtitle = "exp(mean validation cross-entropy)";
  c.x_label = "step";
  c.y_label = "perplexity";
  double lo = INFINITY, hi = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    c.series.push_back({label(runs[i]), metrics[i].eval_step, metrics[i].val_ppl, "", false,
                        metrics[i].eval_step.size() <= 30});
    for (double p : metrics[i].val_ppl)
      if (std::isfinite(p) && p > 0) lo = std::min(lo, p), hi = std::max(hi, p);
  }
  c.log_y = hi > 0 && hi / lo > 10;
  auto f = write_plot(render_svg(c), out_dir + "/compare_ppl", png);
  out.insert(out.end(), f.begin(), f.end());

  BarChart b;
  b.title = "Heads per entropy bin, last evaluation";
  b.subtitle = "bins relative to each run's largest head entropy Max";
  b.x_label = "entropy bin";
  b.y_label = "heads (%)";
  for (auto& l : bin_labels()) b.categories.push_back(l);
  for (auto& r : runs) {
    BarSeries s{label(r), {}, ""};
    for (double v : r.bins) s.values.push_back(100 * v);
    b.series.push_back(s);
  }
  b.value_suffix = "%";
  b.decimals = 0;
  auto g = write_plot(render_svg(b), out_dir + "/compare_entropy_bins", png);
  out.insert(out.end(), g.begin(), g.end());
  return out;
}

}  // namespace aero::analysis
