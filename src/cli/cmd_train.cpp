// `aero train`, `aero eval`, `aero generate`: the trainer's commands (docs/training.md).
#include <csignal>
#include <cmath>
#include <cstdio>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/config_options.h"
#include "cli/registry.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "pi/pi_eval.h"
#include "text/tokenizer.h"
#include "train/checkpoint.h"
#include "train/data_source.h"
#include "train/evaluate.h"
#include "train/sampling.h"
#include "train/trainer.h"

namespace {

using aero::fail;

// Ctrl-C / SIGTERM: finish the current step, write a checkpoint, exit; --resume continues.
extern "C" void on_stop_signal(int) { aero::train::request_stop(); }

aero::cli::Registrar reg_train("train", [](CLI::App& app) {
  auto* sub = app.add_subcommand("train", "Train a model (fresh with --out, or --resume a run)");
  auto opts = aero::cli::add_config_options(sub);
  struct Args {
    std::string out, resume;
    bool overwrite = false, quiet = false;
    long long stop_after = -1;
  };
  auto a = std::make_shared<Args>();
  sub->add_option("--out", a->out, "Run directory for a fresh run (config, metrics, checkpoints)");
  sub->add_option("--resume", a->resume, "Continue the run in this directory from its latest checkpoint");
  sub->add_flag("--overwrite", a->overwrite, "Start fresh even if --out already holds a run");
  sub->add_flag("-q,--quiet", a->quiet, "No live progress line");
  sub->add_option("--stop-after", a->stop_after,
                  "Stop (with a checkpoint) after this many steps in total; --resume continues");
  sub->callback([opts, a] {
    aero::train::TrainOptions to;
    to.progress = !a->quiet;
    to.overwrite = a->overwrite;
    to.stop_after = a->stop_after;
    std::unique_ptr<aero::train::Trainer> t;
    if (!a->resume.empty()) {
      if (!a->out.empty() || !opts->config_path.empty() || !opts->preset.empty() ||
          !opts->rung.empty() || !opts->sets.empty())
        fail("--resume takes the configuration from the run's checkpoint; do not combine it "
             "with --out, --config, --preset, --rung or --set");
      t = aero::train::Trainer::resume(a->resume, to);
    } else {
      if (a->out.empty()) fail("aero train needs --out RUN_DIR (or --resume RUN_DIR)");
      to.out_dir = a->out;
      t = std::make_unique<aero::train::Trainer>(opts->build(), to);
    }
    const auto& c = t->config();
    std::fprintf(stderr, "aero train: %zu parameters, L=%d H=%d d=%d V=%d, %d steps x %d x %d x %d tokens, data %s\n",
                 t->model().num_parameters(), c.model.n_layer, c.model.n_head, c.model.d_model,
                 c.model.vocab_size, c.train.steps, c.train.batch_size, c.train.grad_accum,
                 c.train.seq_len, c.data.dir.empty() ? "synthetic (built in)" : c.data.dir.c_str());
    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);
    const aero::train::TrainSummary s = t->run();
    if (s.interrupted) {
      std::printf("interrupted at step %lld; checkpoint %s; continue with: aero train --resume %s\n",
                  (long long)s.steps_done, s.checkpoint.c_str(), a->resume.empty() ? a->out.c_str() : a->resume.c_str());
      return;
    }
    if (s.diverged)
      fail("training stopped at step ", s.steps_done + 1, ": ", s.nonfinite,
           "; the weights that produced it are saved in ", s.checkpoint);
    std::printf("steps %lld, last val_loss %.4f (ppl %.3f), checkpoint %s\n",
                (long long)s.steps_done, s.val_loss, std::exp(s.val_loss), s.checkpoint.c_str());
  });
});

aero::cli::Registrar reg_eval("eval", [](CLI::App& app) {
  auto* sub = app.add_subcommand("eval", "Perplexity of a checkpoint on a data split");
  struct Args {
    std::string ckpt, split = "valid", data;
    long long max_batches = 0;
    int batch = 0;
    bool json = false, pi_sim = false;
  };
  auto a = std::make_shared<Args>();
  sub->add_option("checkpoint", a->ckpt, "Checkpoint file or run directory")->required();
  sub->add_flag("--pi-sim", a->pi_sim,
                "Evaluate under the exact fixed-point arithmetic of private inference (widths, lookup "
                "tables and truncations of the 2PC engine; docs/private_inference.md)");
  sub->add_option("--split", a->split, "train, valid or another split name of data.dir")->capture_default_str();
  sub->add_option("--data", a->data, "Shard directory (default: the run's data.dir)");
  sub->add_option("--max-batches", a->max_batches, "Evaluate at most this many batches (0 = all)");
  sub->add_option("--batch-size", a->batch, "Sequences per forward (default: train.batch_size)");
  sub->add_flag("--json", a->json, "Print one JSON object");
  sub->callback([a] {
    aero::model::RunConfig c = aero::train::read_checkpoint_config(a->ckpt);
    if (!a->data.empty()) c.data.dir = a->data;
    const int B = a->batch > 0 ? a->batch : c.train.batch_size;
    if (a->pi_sim) {
      // The private-inference graph (src/pi) in its fixed-point executor, bit-compatible with
      // the secure run; the same evaluation as `aero pi eval --no-float`.
      const std::string path = aero::train::resolve_checkpoint(a->ckpt);
      auto pm = aero::pi::PiModel::from_tensors(c.model, aero::SafeTensors::load(path));
      const std::string split = aero::train::split_name(c, a->split);
      auto ds = aero::train::open_split(c, split);
      auto r = aero::pi::pi_evaluate(pm, ds, c.train.seq_len, a->max_batches * B, aero::pi::FxSpec{}, false);
      if (a->json) {
        nlohmann::json j = {{"checkpoint", path}, {"split", split}, {"pi_sim", true},
                            {"val_loss", r.ce_fixed}, {"val_ppl", r.ppl_fixed}, {"chunks", r.chunks},
                            {"tokens", r.tokens}, {"max_wire_bits", r.max_bits}};
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("%s on %s under --pi-sim: loss %.5f, perplexity %.4f over %llu chunks (%llu tokens)\n",
                    path.c_str(), split.c_str(), r.ce_fixed, r.ppl_fixed, (unsigned long long)r.chunks,
                    (unsigned long long)r.tokens);
      }
      return;
    }
    auto lm = aero::train::load_model(a->ckpt, B, c.train.seq_len);
    const std::string split = aero::train::split_name(c, a->split);
    const auto ds = aero::train::open_split(c, split);
    const auto r = aero::train::evaluate(*lm.model, ds, c.train.seq_len, B, a->max_batches,
                                         /*show_progress=*/!a->json);
    if (a->json) {
      nlohmann::json j = {{"checkpoint", lm.path}, {"step", lm.step}, {"split", split},
                          {"val_loss", r.ce}, {"val_ppl", r.ppl}, {"chunks", r.chunks},
                          {"tokens", r.tokens}, {"entropy", r.entropy}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%s (step %lld) on %s: loss %.5f, perplexity %.4f over %llu chunks (%llu tokens)\n",
                  lm.path.c_str(), (long long)lm.step, split.c_str(), r.ce, r.ppl,
                  (unsigned long long)r.chunks, (unsigned long long)r.tokens);
    }
  });
});

aero::cli::Registrar reg_generate("generate", [](CLI::App& app) {
  auto* sub = app.add_subcommand("generate", "Sample text from a checkpoint");
  struct Args {
    std::string ckpt, prompt;
    aero::train::SampleOptions o;
    bool ids = false;
  };
  auto a = std::make_shared<Args>();
  sub->add_option("checkpoint", a->ckpt, "Checkpoint file or run directory")->required();
  sub->add_option("--prompt", a->prompt, "Prompt text (token ids with --ids or a synthetic-corpus model)")->required();
  sub->add_option("--tokens", a->o.tokens, "Tokens to generate")->capture_default_str();
  sub->add_option("--temperature", a->o.temperature, "Sampling temperature (0 = greedy)")->capture_default_str();
  sub->add_option("--top-k", a->o.top_k, "Sample among the k most likely tokens (0 = all)")->capture_default_str();
  sub->add_option("--seed", a->o.seed, "Sampling seed")->capture_default_str();
  sub->add_flag("--ids", a->ids, "The prompt and the output are token ids (space separated)");
  sub->callback([a] {
    auto lm = aero::train::load_model(a->ckpt, 1, 0);
    const auto& c = lm.config;
    // A model trained on the built-in synthetic corpus has no tokenizer: it speaks in ids.
    const bool ids = a->ids || c.data.dir.empty();
    std::unique_ptr<aero::text::Tokenizer> tok;
    std::vector<uint32_t> prompt;
    if (ids) {
      std::istringstream in(a->prompt);
      std::string w;
      while (in >> w) {
        try {
          size_t used = 0;
          unsigned long v = std::stoul(w, &used);
          if (used != w.size()) throw std::invalid_argument(w);
          prompt.push_back(uint32_t(v));
        } catch (const std::exception&) {
          fail("--prompt: '", w, "' is not a token id (this model ",
               c.data.dir.empty() ? "was trained on the synthetic corpus" : "was asked for --ids",
               " and takes space-separated ids)");
        }
      }
    } else {
      tok = aero::text::Tokenizer::load(c.data.tokenizer);
      prompt = tok->encode(a->prompt);
    }
    const auto out = aero::train::generate(*lm.model, prompt, c.model.context, a->o);
    if (ids) {
      std::string s;
      for (uint32_t t : prompt) s += std::to_string(t) + " ";
      for (uint32_t t : out) s += std::to_string(t) + " ";
      if (!s.empty()) s.pop_back();
      std::printf("%s\n", s.c_str());
    } else {
      std::printf("%s%s\n", a->prompt.c_str(), tok->decode(out).c_str());
    }
  });
});

}  // namespace
