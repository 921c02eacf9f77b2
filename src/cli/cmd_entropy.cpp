// `aero entropy CKPT`: per layer and head mean attention entropy over a validation sample,
// the paper's four bins relative to the largest head entropy, overload / collapse fractions,
// ln(T!)/T and NaN counts; writes a table, JSON and the heatmap / bin plots (docs/analysis.md).
#include <cmath>
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "analysis/compare.h"
#include "analysis/entropy_eval.h"
#include "cli/registry.h"
#include "core/error.h"
#include "core/files.h"
#include "train/checkpoint.h"
#include "train/data_source.h"

namespace {

namespace fs = std::filesystem;

// RUN_DIR/ckpt/step-000100.safetensors -> RUN_DIR/entropy/step-000100; a loose weights file
// X.safetensors -> X.entropy beside it.
std::string default_out(const std::string& weights) {
  fs::path p(weights);
  if (p.parent_path().filename() == "ckpt") return (p.parent_path().parent_path() / "entropy" / p.stem()).string();
  return (p.parent_path() / (p.stem().string() + ".entropy")).string();
}

aero::cli::Registrar reg("entropy", [](CLI::App& app) {
  auto* sub = app.add_subcommand(
      "entropy", "Attention entropy per layer and head of a checkpoint (bins, overload, collapse, NaN counts)");
  struct Args {
    std::string ckpt, split = "valid", data, out, name;
    long long batches = 8;
    int batch = 0, seq_len = 0;
    bool json = false, no_png = false;
  };
  auto a = std::make_shared<Args>();
  sub->add_option("CKPT", a->ckpt, "Checkpoint file or run directory (its latest checkpoint)")->required();
  sub->add_option("--split", a->split, "valid, train or another split name of data.dir")->capture_default_str();
  sub->add_option("--data", a->data, "Shard directory (default: the checkpoint's data.dir; empty = synthetic corpus)");
  sub->add_option("--batches", a->batches, "Forwards of --batch-size sequences to average over (0 = whole split)")
      ->capture_default_str();
  sub->add_option("--batch-size", a->batch, "Sequences per forward (default: train.batch_size)");
  sub->add_option("--seq-len", a->seq_len, "Tokens per sequence (default: train.seq_len)");
  sub->add_option("--out", a->out, "Output directory (default RUN_DIR/entropy/<checkpoint>)");
  sub->add_option("--name", a->name, "Name in the plot titles (default: run directory and rung)");
  sub->add_flag("--json", a->json, "Print the JSON instead of the table");
  sub->add_flag("--no-png", a->no_png, "SVG plots only");
  sub->callback([a] {
    aero::model::RunConfig c = aero::train::read_checkpoint_config(a->ckpt);
    if (!a->data.empty()) c.data.dir = a->data;
    const int B = a->batch > 0 ? a->batch : c.train.batch_size;
    const int T = a->seq_len > 0 ? a->seq_len : c.train.seq_len;
    AERO_CHECK(T <= c.model.context, "aero entropy: --seq-len ", T, " exceeds model.context ", c.model.context);
    auto lm = aero::train::load_model(a->ckpt, B, T);
    const std::string split = aero::train::split_name(c, a->split);
    const auto ds = aero::train::open_split(c, split);
    auto r = aero::analysis::measure_entropy(*lm.model, ds, T, B, a->batches, /*show_progress=*/!a->json);

    std::string out = a->out.empty() ? default_out(lm.path) : a->out;
    fs::path wp(lm.path);
    std::string run = wp.parent_path().filename() == "ckpt" ? wp.parent_path().parent_path().filename().string()
                                                             : wp.stem().string();
    std::string arch = aero::analysis::architecture_name(c.model);
    std::string name = a->name.empty() ? (run == arch ? run : run + " " + arch) + ", step " + std::to_string(lm.step)
                                        : a->name;

    nlohmann::json j = aero::analysis::to_json(r.summary);
    j["checkpoint"] = lm.path;
    j["step"] = lm.step;
    j["architecture"] = arch;
    j["split"] = split;
    j["data"] = c.data.dir.empty() ? "synthetic" : c.data.dir;
    j["val_loss"] = std::isfinite(r.ce) ? nlohmann::json(r.ce) : nlohmann::json(nullptr);
    j["val_ppl"] = std::isfinite(r.ce) ? nlohmann::json(std::exp(r.ce)) : nlohmann::json(nullptr);
    j["nonfinite"] = r.nonfinite;
    // The paper's distribution for this rung (GPT-2 L=12 T=128, CodeParrot), for comparison.
    auto paper = aero::analysis::paper_entropy_bins(arch);
    bool has_paper = std::isfinite(paper[0]);
    if (has_paper) {
      nlohmann::json pb = nlohmann::json::array();
      for (double v : paper) pb.push_back(std::isfinite(v) ? nlohmann::json(v / 100) : nlohmann::json(nullptr));
      j["paper_bin_fractions"] = pb;
    }
    std::string table = aero::analysis::format_summary(r.summary);
    aero::make_dirs(out);
    aero::write_file_atomic(out + "/entropy.json", j.dump(2) + "\n");
    aero::write_file_atomic(out + "/entropy.txt", name + "\n" + table);
    auto files = aero::analysis::plot_entropy(r.summary, out, name, !a->no_png, paper,
                                              has_paper ? "paper, GPT-2 L12 T128" : "");
    if (a->json) {
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      std::printf("%s (step %lld, %s) on %s: %llu sequences of %d tokens, CE %.4f\n", lm.path.c_str(),
                  (long long)lm.step, arch.c_str(), split.c_str(), (unsigned long long)r.chunks, T, r.ce);
      std::fputs(table.c_str(), stdout);
      if (!r.nonfinite.empty()) std::printf("first non-finite value: %s\n", r.nonfinite.c_str());
    }
    std::fprintf(stderr, "wrote %s/entropy.json\nwrote %s/entropy.txt\n", out.c_str(), out.c_str());
    for (auto& f : files) std::fprintf(stderr, "wrote %s\n", f.c_str());
  });
});

}  // namespace
