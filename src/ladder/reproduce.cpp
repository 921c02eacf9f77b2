#include "ladder/reproduce.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <sstream>
#include <thread>

#include "analysis/compare.h"
#include "analysis/entropy.h"
#include "analysis/entropy_eval.h"
#include "analysis/flops.h"
#include "analysis/run_metrics.h"
#include "core/error.h"
#include "core/files.h"
#include "core/process.h"
#include "core/safetensors.h"
#include "model/config.h"
#include "pi/pi_bench.h"
#include "train/checkpoint.h"
#include "train/checkpoint_format.h"
#include "train/data_source.h"
#include "train/evaluate.h"
#include "train/trainer.h"

namespace aero::ladder {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<std::string> default_rungs(int n_layer) {
  const std::string k = "-k" + std::to_string(std::max(1, n_layer / 2));
  return {"SM+LN+G",    "SM+LN+R",           "SM+G", "SM+R", "SM+ScFFN", "SM+ScFuFFN",
          "SM+ScFuFFN" + k, "EReg(SM(t)+ScFuFFN)", "EReg(SM(t)+ScFuFFN)" + k};
}

std::string rung_slug(const std::string& rung) {
  std::string s;
  for (char c : rung) {
    bool keep = std::isalnum(static_cast<unsigned char>(c));
    if (keep)
      s += c;
    else if (!s.empty() && s.back() != '_')
      s += '_';
  }
  while (!s.empty() && s.back() == '_') s.pop_back();
  return s;
}

namespace {

json finite_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

// Private-inference cost of a model shape: measured 2PC (loopback TCP, random weights) when
// layers != 0, and the analytic cost model at the same shape and at GPT-2 small's shape
// (L12 H12 d768 T128: the paper's table) for comparison with the paper.
json measure_pi(const model::ModelConfig& mc, int layers, const pi::MachineRates& rates) {
  json out;
  pi::BenchOptions bo;
  bo.scope = pi::Scope::blocks;
  out["cost_model"] = pi::bench_cost(mc, bo, rates);
  model::ModelConfig g = mc;
  g.n_layer = 12;
  g.n_head = 12;
  g.d_model = 768;
  g.d_ff = 3072;
  g.context = 128;
  if (g.ffn_layers >= 0) g.ffn_layers = std::max(1, mc.ffn_layers * 12 / std::max(1, mc.n_layer));
  out["gpt2_small_shape"] = pi::bench_cost(g, bo, rates);
  if (layers != 0) out["measured"] = pi::bench_measured(mc, bo, layers < 0 ? mc.n_layer : std::min(layers, mc.n_layer));
  return out;
}

// The private-inference part of a finished rung: pi.json and r["pi"].
void write_pi(const std::string& dir, json& r, const model::ModelConfig& mc, int T, int pi_layers,
              const pi::MachineRates& rates) {
  json pij = measure_pi(mc, pi_layers, rates);
  r["pi"] = pij;
  const json& src = pij.contains("measured") ? pij["measured"] : pij["cost_model"];
  json pi_file = {{"online_bytes", src["online_bytes"]}, {"rounds", src["rounds"]},
                  {"latency_s", src["latency_s"]}, {"offline_bytes", src["key_bytes_per_party"]},
                  {"scope", "blocks"}, {"tokens", T},
                  {"source", src.value("source", std::string("measured"))}};
  write_file_atomic(dir + "/pi.json", pi_file.dump(2) + "\n");
}

// What the evaluation of a trained rung found (CPU or GPU).
struct RungEval {
  double ce = NAN, ppl = NAN;
  uint64_t tokens = 0;
  analysis::EntropySummary entropy;
};

// Everything after training and evaluation: entropy files and figures, FLOPs, private
// inference, rung.json. Shared by the CPU and the GPU paths.
json finish_rung(const LadderOptions& o, const std::string& rung, const std::string& dir,
                 const model::RunConfig& cfg, int64_t steps, bool diverged, const std::string& nonfinite,
                 const RungEval& ev, const pi::MachineRates& rates, const std::string& trained_on) {
  const int T = cfg.train.seq_len;
  json r;
  r["rung"] = rung;
  r["architecture"] = analysis::architecture_name(cfg.model);
  r["run_dir"] = dir;
  r["steps"] = steps;
  r["diverged"] = diverged;
  r["nonfinite"] = nonfinite;
  r["trained_on"] = trained_on;
  if (ev.tokens) r["valid_tokens"] = ev.tokens;
  r["val_loss"] = finite_or_null(ev.ce);
  r["ppl"] = finite_or_null(ev.ppl);

  json ej = analysis::to_json(ev.entropy);
  write_file_atomic(dir + "/entropy.json", ej.dump(2) + "\n");
  analysis::plot_entropy(ev.entropy, dir + "/plots", rung, o.png);
  r["entropy"] = {{"overload_fraction", ev.entropy.overload_fraction},
                  {"collapse_fraction", ev.entropy.collapse_fraction},
                  {"bin_fractions", ev.entropy.bin_fractions},
                  {"nan_heads", ev.entropy.nan_heads}};
  analysis::plot_run(analysis::read_metrics(dir), dir + "/plots", rung, T, o.png);

  // FLOPs and nonlinear operators at the trained shape.
  analysis::FlopsReport fl = analysis::compute_flops(cfg.model, T);
  r["flops"] = analysis::to_json(fl);

  // Private inference.
  std::fprintf(stderr, "[reproduce] %s: private inference cost\n", rung.c_str());
  write_pi(dir, r, cfg.model, T, o.pi_layers, rates);
  write_file_atomic(dir + "/rung.json", r.dump(2) + "\n");
  return r;
}

std::string rung_dir(const LadderOptions& o, const std::string& rung) {
  return (fs::path(o.out_dir) / rung_slug(rung)).string();
}

// A finished rung is loaded as it is; with refresh_pi its private-inference costs are measured
// again with this build's engine (the trained model is not needed: costs depend on the shape).
json load_done(const LadderOptions& o, const std::string& rung, const std::string& dir,
               const pi::MachineRates& rates) {
  json r = json::parse(read_file(dir + "/rung.json"));
  if (!o.refresh_pi) {
    std::fprintf(stderr, "[reproduce] %s: done earlier (%s/rung.json), skipped\n", rung.c_str(), dir.c_str());
    return r;
  }
  std::fprintf(stderr, "[reproduce] %s: done earlier; private-inference cost measured again\n", rung.c_str());
  const model::RunConfig cfg = model::run_config_from_json(json::parse(read_file(dir + "/config.json")), dir + "/config.json");
  write_pi(dir, r, cfg.model, cfg.train.seq_len, o.pi_layers, rates);
  r["run_dir"] = dir;
  write_file_atomic(dir + "/rung.json", r.dump(2) + "\n");
  return r;
}

// The CPU path: train (or resume) with train::Trainer, evaluate with the CPU model.
json run_rung_cpu(const LadderOptions& o, const std::string& rung, const pi::MachineRates& rates) {
  const std::string dir = rung_dir(o, rung);
  model::RunConfig cfg = model::build_run_config("", o.preset, rung, o.sets);
  train::TrainOptions topt;
  topt.out_dir = dir;
  topt.progress = o.progress;
  std::unique_ptr<train::Trainer> tr;
  if (file_exists(dir + "/ckpt/latest")) {
    std::fprintf(stderr, "[reproduce] %s: resuming %s\n", rung.c_str(), dir.c_str());
    tr = train::Trainer::resume(dir, topt);
  } else {
    std::fprintf(stderr, "[reproduce] %s: training (%d steps) in %s\n", rung.c_str(), cfg.train.steps, dir.c_str());
    topt.overwrite = true;  // a directory without a checkpoint holds nothing worth keeping
    tr = std::make_unique<train::Trainer>(cfg, topt);
  }
  train::TrainSummary ts = tr->run();
  cfg = tr->config();

  // Perplexity over the whole validation split (full chunks), unless training diverged.
  RungEval ev;
  const int T = cfg.train.seq_len, B = cfg.train.batch_size;
  text::TokenDataset valid = train::open_split(cfg, cfg.data.valid_split);
  if (!ts.diverged) {
    train::EvalResult e = train::evaluate(tr->model(), valid, T, B, 0, false);
    ev.ce = e.ce;
    ev.ppl = e.ppl;
    ev.tokens = e.tokens;
  }
  // Head entropy on a validation sample, with the paper's bins and figures.
  ev.entropy = analysis::measure_entropy(tr->model(), valid, T, B, o.entropy_batches, false).summary;
  return finish_rung(o, rung, dir, cfg, tr->steps_done(), ts.diverged, ts.nonfinite, ev, rates, "cpu");
}

// What a run directory's latest checkpoint says, from the files' headers only (the GPU path
// decides between resume, skip and evaluate without loading the weights).
struct LatestCheckpoint {
  model::RunConfig cfg;
  int64_t step = 0;
  std::string stop_reason;  // the NaN guard's finding, "" if the run did not diverge
};

LatestCheckpoint latest_checkpoint(const std::string& run_dir) {
  const std::string w = train::resolve_checkpoint(run_dir), sp = train::state_path_for(w);
  LatestCheckpoint c;
  c.cfg = train::config_from_weights_metadata(SafeTensors::load_metadata(w), w, &c.step);
  c.stop_reason = train::state_from_metadata(SafeTensors::load_metadata(sp), sp).stop_reason;
  return c;
}

std::string log_tail(const std::string& path, size_t bytes = 1500) {
  if (!file_exists(path)) return "(no log)";
  std::string s = read_file(path);
  return s.size() > bytes ? "..." + s.substr(s.size() - bytes) : s;
}

std::string join_cmd(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

// The GPU path, phase 1: trains every pending rung with `o.gpu_trainer train`, as many at once
// as there are GPUs; a rung with a checkpoint is resumed. Logs in DIR/<slug>/train.log.
void train_rungs_gpu(const LadderOptions& o, const std::vector<std::string>& rungs) {
  AERO_CHECK(!o.gpus.empty(), "aero reproduce: --gpus needs at least one device id");
  std::vector<std::string> pending;
  for (const auto& r : rungs)
    if (!file_exists(rung_dir(o, r) + "/rung.json")) pending.push_back(r);
  std::mutex mu;
  size_t next = 0;
  // Groups of gpus_per_rung devices; a group of one passes --device, a larger one runs the
  // rung data parallel (aero-gpu --gpus K) on exactly its devices (CUDA_VISIBLE_DEVICES).
  const int per = std::max(1, o.gpus_per_rung);
  AERO_CHECK(o.gpus.size() % size_t(per) == 0, "aero reproduce: ", o.gpus.size(),
             " GPU ids are not a multiple of --gpus-per-rung ", per);
  std::vector<std::vector<int>> groups;
  for (size_t i = 0; i < o.gpus.size(); i += size_t(per))
    groups.emplace_back(o.gpus.begin() + long(i), o.gpus.begin() + long(i) + per);
  auto worker = [&](const std::vector<int>& group) {
    const int gpu = group.front();
    std::string visible;
    for (int g : group) visible += (visible.empty() ? "" : ",") + std::to_string(g);
    for (;;) {
      std::string rung;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (next == pending.size()) return;
        rung = pending[next++];
      }
      const std::string dir = rung_dir(o, rung);
      make_dirs(dir);
      std::vector<std::string> argv = {o.gpu_trainer, "train"};
      if (file_exists(dir + "/ckpt/latest")) {
        const LatestCheckpoint c = latest_checkpoint(dir);
        if (!c.stop_reason.empty() || c.step >= c.cfg.train.steps) continue;  // diverged or complete
        argv.insert(argv.end(), {"--resume", dir});
      } else {
        const model::RunConfig cfg = model::build_run_config("", o.preset, rung, o.sets);
        write_file_atomic(dir + "/rung_config.json", model::to_json(cfg).dump(2) + "\n");
        argv.insert(argv.end(), {"--config", dir + "/rung_config.json", "--out", dir, "--overwrite"});
      }
      if (per == 1)
        argv.insert(argv.end(), {"--device", std::to_string(gpu)});
      else
        argv.insert(argv.end(), {"--gpus", std::to_string(per)});
      if (o.max_seconds > 0) {
        char b[32];
        std::snprintf(b, sizeof b, "%g", o.max_seconds);
        argv.insert(argv.end(), {"--max-seconds", b});
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        std::fprintf(stderr, "[reproduce] %s: GPU %s: %s (log %s/train.log)\n", rung.c_str(), visible.c_str(),
                     join_cmd(argv).c_str(), dir.c_str());
      }
      const auto t0 = std::chrono::steady_clock::now();
      ProcessOptions po{dir + "/train.log", {}};
      if (per > 1) po.env.push_back({"CUDA_VISIBLE_DEVICES", visible});
      const int rc = run_process(argv, po);
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::lock_guard<std::mutex> lock(mu);
      std::fprintf(stderr, "[reproduce] %s: GPU %s: exit %d after %.0f s\n", rung.c_str(), visible.c_str(), rc, dt);
    }
  };
  std::vector<std::thread> threads;
  for (const auto& g : groups) threads.emplace_back(worker, g);
  for (auto& t : threads) t.join();
}

// The GPU path, phase 2 for one rung: finished -> evaluate on the GPU and finish; diverged ->
// finish with NaN; unfinished (time limit) -> null.
json analyze_rung_gpu(const LadderOptions& o, const std::string& rung, const pi::MachineRates& rates) {
  const std::string dir = rung_dir(o, rung);
  AERO_CHECK(file_exists(dir + "/ckpt/latest"), "aero reproduce: ", rung, ": ", o.gpu_trainer,
             " left no checkpoint in ", dir, "; the end of ", dir, "/train.log:\n", log_tail(dir + "/train.log"));
  const LatestCheckpoint latest = latest_checkpoint(dir);
  const model::RunConfig& cfg = latest.cfg;
  const int64_t step = latest.step;
  const bool diverged = !latest.stop_reason.empty();
  if (!diverged && step < cfg.train.steps) {
    std::fprintf(stderr, "[reproduce] %s: trained %lld of %d steps; rerun to continue\n", rung.c_str(),
                 (long long)step, cfg.train.steps);
    return nullptr;
  }
  RungEval ev;
  const int T = cfg.train.seq_len;
  if (diverged) {
    ev.entropy = analysis::summarize_entropy(
        analysis::Matrix(cfg.model.n_layer, std::vector<double>(cfg.model.n_head, NAN)), T);
  } else {
    const std::string ej = dir + "/eval.json";
    const std::vector<std::string> argv = {o.gpu_trainer, "eval", dir, "--json", ej, "--device",
                                           std::to_string(o.gpus.front())};
    std::fprintf(stderr, "[reproduce] %s: %s\n", rung.c_str(), join_cmd(argv).c_str());
    const int rc = run_process(argv, {dir + "/eval.log", {}});
    AERO_CHECK(rc == 0 && file_exists(ej), "aero reproduce: ", rung, ": evaluation failed (exit ", rc,
               "); the end of ", dir, "/eval.log:\n", log_tail(dir + "/eval.log"));
    const json e = json::parse(read_file(ej));
    ev.ce = e["val_loss"].is_number() ? e["val_loss"].get<double>() : NAN;
    ev.ppl = e["val_ppl"].is_number() ? e["val_ppl"].get<double>() : NAN;
    ev.tokens = e.value("tokens", uint64_t(0));
    const auto ent = e.at("entropy").get<analysis::Matrix>();
    ev.entropy = analysis::summarize_entropy(ent, T, 0, int64_t(e.value("chunks", uint64_t(0))));
  }
  return finish_rung(o, rung, dir, cfg, step, diverged, latest.stop_reason, ev, rates, "gpu");
}

double num(const json& j, const char* k) {
  return j.contains(k) && j[k].is_number() ? j[k].get<double>() : NAN;
}

std::string fmt(double v, const char* f) {
  if (!std::isfinite(v)) return "NaN";
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string fmt_bytes(double b) {
  if (!std::isfinite(b)) return "-";
  if (b >= (1 << 30)) return fmt(b / double(1 << 30), "%.3f GiB");
  if (b >= (1 << 20)) return fmt(b / double(1 << 20), "%.1f MiB");
  return fmt(b / 1024.0, "%.1f KiB");
}

// latency_s is an object of network profiles; the paper's WAN is wan-100m-80ms.
double latency(const json& pi, const char* profile) {
  if (!pi.contains("latency_s") || !pi["latency_s"].is_object()) return NAN;
  const json& l = pi["latency_s"];
  return l.contains(profile) && l[profile].is_number() ? l[profile].get<double>() : NAN;
}

const json& pi_primary(const json& r) {
  return r["pi"].contains("measured") ? r["pi"]["measured"] : r["pi"]["cost_model"];
}

}  // namespace

std::string results_markdown(const json& res) {
  std::ostringstream os;
  const json& rungs = res["rungs"];
  os << "| network | PPL | nonlinear ops | FFN FLOPs | attn FLOPs | comm | rounds | lat LAN (s) | lat WAN (s) "
        "| comm saving | lat saving | overload | collapse |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  double base_b = NAN, base_l = NAN;
  for (const auto& r : rungs)
    if (r["rung"] == "SM+LN+G") {
      base_b = num(pi_primary(r), "online_bytes");
      base_l = latency(pi_primary(r), "wan-100m-80ms");
    }
  for (const auto& r : rungs) {
    const json& p = pi_primary(r);
    double b = num(p, "online_bytes"), lw = latency(p, "wan-100m-80ms"), ll = latency(p, "lan-10g");
    os << "| " << r["rung"].get<std::string>() << " | " << fmt(num(r, "ppl"), "%.3f") << " | "
       << r["flops"].value("inventory", std::string("")) << " | "
       << analysis::format_flops(num(r["flops"], "ffn_flops")) << " | "
       << analysis::format_flops(num(r["flops"], "attn_flops")) << " | " << fmt_bytes(b) << " | "
       << fmt(num(p, "rounds"), "%.0f") << " | " << fmt(ll, "%.3f") << " | " << fmt(lw, "%.2f") << " | "
       << fmt(base_b / b, "%.2fx") << " | " << fmt(base_l / lw, "%.2fx") << " | "
       << fmt(100 * num(r["entropy"], "overload_fraction"), "%.0f%%") << " | "
       << fmt(100 * num(r["entropy"], "collapse_fraction"), "%.0f%%") << " |\n";
  }
  // The same rungs' private-inference cost at GPT-2 small's shape (the paper's table).
  os << "\nPrivate-inference cost of each rung at GPT-2 small's shape (L=12, H=12, d=768, T=128, "
        "12 blocks on embedded input; cost model of this engine's protocols):\n\n"
        "| network | comm | rounds | keys/party | lat 1 Gbit/s (s) | lat WAN 100 Mbit/s 80 ms (s) | comm saving |\n"
        "|---|---|---|---|---|---|---|\n";
  double g_base = NAN;
  for (const auto& r : rungs)
    if (r["rung"] == "SM+LN+G") g_base = num(r["pi"]["gpt2_small_shape"], "online_bytes");
  for (const auto& r : rungs) {
    const json& g = r["pi"]["gpt2_small_shape"];
    double b = num(g, "online_bytes");
    os << "| " << r["rung"].get<std::string>() << " | " << fmt_bytes(b) << " | " << fmt(num(g, "rounds"), "%.0f")
       << " | " << fmt_bytes(num(g, "key_bytes_per_party")) << " | " << fmt(latency(g, "1g"), "%.3f") << " | "
       << fmt(latency(g, "wan-100m-80ms"), "%.2f") << " | " << fmt(g_base / b, "%.2fx") << " |\n";
  }
  return os.str();
}

std::string results_csv(const json& res) {
  std::ostringstream os;
  os << "rung,architecture,ppl,val_loss,diverged,nonlinear_ops,ffn_flops,attn_flops,online_bytes,rounds,"
        "key_bytes_per_party,latency_lan_s,latency_1g_s,latency_wan100_s,overload,collapse,"
        "gpt2s_online_bytes,gpt2s_rounds,gpt2s_latency_wan100_s\n";
  for (const auto& r : res["rungs"]) {
    const json& p = pi_primary(r);
    const json& g = r["pi"]["gpt2_small_shape"];
    os << '"' << r["rung"].get<std::string>() << "\",\"" << r["architecture"].get<std::string>() << "\","
       << fmt(num(r, "ppl"), "%.5f") << ',' << fmt(num(r, "val_loss"), "%.5f") << ','
       << (r["diverged"].get<bool>() ? 1 : 0) << ",\"" << r["flops"].value("inventory", std::string(""))
       << "\"," << fmt(num(r["flops"], "ffn_flops"), "%.0f") << ',' << fmt(num(r["flops"], "attn_flops"), "%.0f")
       << ',' << fmt(num(p, "online_bytes"), "%.0f") << ',' << fmt(num(p, "rounds"), "%.0f") << ','
       << fmt(num(p, "key_bytes_per_party"), "%.0f") << ',' << fmt(latency(p, "lan-10g"), "%.4f") << ','
       << fmt(latency(p, "1g"), "%.4f") << ',' << fmt(latency(p, "wan-100m-80ms"), "%.4f") << ','
       << fmt(num(r["entropy"], "overload_fraction"), "%.4f") << ','
       << fmt(num(r["entropy"], "collapse_fraction"), "%.4f") << ',' << fmt(num(g, "online_bytes"), "%.0f")
       << ',' << fmt(num(g, "rounds"), "%.0f") << ',' << fmt(latency(g, "wan-100m-80ms"), "%.4f") << '\n';
  }
  return os.str();
}

json reproduce(const LadderOptions& o) {
  AERO_CHECK(!o.out_dir.empty(), "aero reproduce: --out is required");
  make_dirs(o.out_dir);
  model::RunConfig base = model::build_run_config("", o.preset, "", o.sets);
  std::vector<std::string> rungs = o.rungs.empty() ? default_rungs(base.model.n_layer) : o.rungs;
  for (const auto& r : rungs) model::build_run_config("", o.preset, r, o.sets);  // validate all first
  pi::MachineRates rates = pi::measure_machine_rates();
  json res = {{"preset", o.preset}, {"sets", o.sets}, {"rungs", json::array()},
              {"unfinished", json::array()}, {"base_config", model::to_json(base)},
              {"trainer", o.gpu_trainer.empty() ? "cpu" : "gpu"}};
  if (!o.gpu_trainer.empty()) train_rungs_gpu(o, rungs);
  for (size_t i = 0; i < rungs.size(); ++i) {
    std::fprintf(stderr, "[reproduce] rung %zu/%zu: %s\n", i + 1, rungs.size(), rungs[i].c_str());
    const std::string dir = rung_dir(o, rungs[i]);
    json r = file_exists(dir + "/rung.json") ? load_done(o, rungs[i], dir, rates)
             : o.gpu_trainer.empty()          ? run_rung_cpu(o, rungs[i], rates)
                                              : analyze_rung_gpu(o, rungs[i], rates);
    if (r.is_null())
      res["unfinished"].push_back(rungs[i]);
    else
      res["rungs"].push_back(std::move(r));
  }
  if (res["rungs"].empty()) {
    write_file_atomic(o.out_dir + "/results.json", res.dump(2) + "\n");
    write_file_atomic(o.out_dir + "/results.md", "# AERO ladder: preset `" + o.preset +
                                                     "`\n\nNo rung has finished yet; rerun the same command "
                                                     "to continue training.\n");
    return res;
  }
  // Figures across rungs and the tables.
  std::vector<analysis::RunSummary> sums;
  std::vector<analysis::RunMetrics> mets;
  for (const auto& r : res["rungs"]) {
    sums.push_back(analysis::summarize_run(r["run_dir"].get<std::string>()));
    mets.push_back(analysis::read_metrics(r["run_dir"].get<std::string>()));
  }
  auto figs = analysis::plot_compare(sums, mets, o.out_dir + "/figures", o.png);
  res["figures"] = figs;
  std::string md = "# AERO ladder: preset `" + o.preset + "`\n\n" +
                   "Model: " + sums.front().shape + ", data: " +
                   (base.data.dir.empty() ? std::string("built-in synthetic corpus") : base.data.dir) +
                   ", " + std::to_string(base.train.steps) + " steps of " +
                   std::to_string(base.train.batch_size * base.train.grad_accum) + " x " +
                   std::to_string(base.train.seq_len) + " tokens per rung, trained " +
                   (o.gpu_trainer.empty() ? std::string("on the CPU (aero train)")
                                          : "on GPU (aero-gpu, " + std::to_string(o.gpus.size()) + " device(s))") +
                   ".\n" +
                   "PPL: validation perplexity over full chunks. comm/rounds/latency: one private inference "
                   "of the trained shape (SIGMA's scope: every block on embedded input, no embedding or LM head), " +
                   (o.pi_layers != 0 ? "measured over loopback TCP (dealer + 2 parties)"
                                     : "from the cost model") +
                   "; latency = compute + bytes/bandwidth + rounds x delay (LAN 10 Gbit/s 0.1 ms, WAN "
                   "100 Mbit/s 80 ms). Savings are relative to SM+LN+G.\n\n" +
                   results_markdown(res);
  if (!res["unfinished"].empty()) {
    md += "\nNot finished yet (rerun the same command to continue):";
    for (const auto& u : res["unfinished"]) md += " " + u.get<std::string>() + ";";
    md += "\n";
  }
  write_file_atomic(o.out_dir + "/results.md", md);
  write_file_atomic(o.out_dir + "/results.csv", results_csv(res));
  write_file_atomic(o.out_dir + "/results.json", res.dump(2) + "\n");
  return res;
}

}  // namespace aero::ladder
