// aero import hf DIR --out CKPT   /   aero export hf CKPT DIR
#include <algorithm>
#include <cstdio>

#include "cli/registry.h"
#include "core/error.h"
#include "interop/hf.h"
#include "interop/model_weights.h"
#include "train/checkpoint.h"

namespace {

using namespace aero;

void add_import(CLI::App& app) {
  auto* imp = app.add_subcommand("import", "Import a model from another framework");
  imp->require_subcommand(1);
  auto* hf = imp->add_subcommand("hf", "Read a Hugging Face GPT2LMHeadModel / GPTNeoXForCausalLM directory "
                                        "(config.json + safetensors) into an aero checkpoint");
  auto dir = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto tokenizer = std::make_shared<std::string>("gpt2");
  hf->add_option("DIR", *dir, "Hugging Face model directory")->required();
  hf->add_option("--out", *out, "aero checkpoint to write (.safetensors)")->required();
  hf->add_option("--tokenizer", *tokenizer, "tokenizer to record in the config (gpt2 or a tokenizer.json)");
  hf->callback([=] {
    interop::AeroWeights w = interop::import_hf(*dir);
    model::RunConfig cfg;
    cfg.model = w.config;
    cfg.train.seq_len = w.config.context;
    cfg.data.tokenizer = *tokenizer;
    model::Model m(cfg.model, 1, std::min(cfg.model.context, 8));
    interop::load_into(w, m);
    train::save_checkpoint(*out, m, cfg, 0);
    std::printf("imported %s (%s, L%d H%d d%d, %zu parameters) -> %s\n", dir->c_str(),
                model::to_string(cfg.model.family), cfg.model.n_layer, cfg.model.n_head,
                cfg.model.d_model, m.num_parameters(), out->c_str());
  });
}

void add_export(CLI::App& app) {
  auto* exp = app.add_subcommand("export", "Export an aero checkpoint to another framework");
  exp->require_subcommand(1);
  auto* hf = exp->add_subcommand("hf", "Write a Hugging Face checkpoint directory (config.json + "
                                        "model.safetensors); for configs the transformers classes "
                                        "cannot express, write plain safetensors + aero_model.json and exit 3");
  auto ckpt = std::make_shared<std::string>();
  auto dir = std::make_shared<std::string>();
  hf->add_option("CKPT", *ckpt, "checkpoint file or run directory")->required();
  hf->add_option("DIR", *dir, "output directory")->required();
  hf->callback([=] {
    auto loaded = train::load_model(*ckpt, 1, std::min(8, train::read_checkpoint_config(*ckpt).model.context));
    interop::AeroWeights w = interop::weights_of(*loaded.model);
    std::string why = interop::hf_unsupported_reason(w.config);
    if (why.empty()) {
      interop::export_hf(w, *dir);
      std::printf("wrote Hugging Face checkpoint %s (from_pretrained-loadable)\n", dir->c_str());
      return;
    }
    interop::export_plain(w, *dir);
    std::fprintf(stderr,
                 "aero: refused: the transformers classes have no %s; wrote plain aero "
                 "safetensors and aero_model.json to %s instead\n",
                 why.c_str(), dir->c_str());
    throw CLI::RuntimeError(3);
  });
}

aero::cli::Registrar reg_import("import", add_import);
aero::cli::Registrar reg_export("export", add_export);

}  // namespace
