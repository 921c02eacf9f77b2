// Run configuration: the model switches of the AERO ladder, the entropy regularizer, training
// and data settings (docs/config.md is the contract; every key is validated by name).
//
// A run config is built as JSON first (preset, then rung, then --set overrides, then a config
// file's contents on top of the preset), and parsed once at the end, so defaults that depend
// on other keys (final_norm, parallel_residual, tie_embeddings, temperature_init, d_ff,
// train.seq_len) are resolved against the final values. to_json writes every key resolved;
// parsing that output gives the same config back.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace aero::model {

enum class Family { gpt2, pythia };
enum class Norm { layernorm, none };
// gelu: tanh approximation (GPT-2 "gelu_new"); gelu_exact: x Phi(x) with erf (GPT-NeoX/Pythia).
enum class Activation { gelu, relu, leaky_relu, learnable_leaky_relu, identity, gelu_exact };
enum class SlopeScope { global, per_layer };
enum class FfnKind { standard, fused, none };
enum class TemperatureParam { exp, direct, offset };
enum class EntropyReduction { sum, mean };

// The linear groups that weight / spectral normalization can be applied to.
struct LinearGroups {
  bool qk = false, v = false, o = false, ffn = false;
  bool any() const { return qk || v || o || ffn; }
  bool operator==(const LinearGroups&) const = default;
};

// SPEC section 3: loss = CE + lambda * L_ent, penalty delta^2 outside |delta| <= gamma ln T.
struct EntropyRegConfig {
  bool enabled = false;
  double lambda = 1e-5;
  double gamma = 0.2;
  double theta_init = 0.5;
  EntropyReduction reduction = EntropyReduction::sum;
  bool operator==(const EntropyRegConfig&) const = default;
};

struct ModelConfig {
  Family family = Family::gpt2;
  int n_layer = 4, n_head = 4, d_model = 128;
  int context = 128;
  int vocab_size = 50257;
  int d_ff = 512;
  bool bias = true;
  Norm norm = Norm::layernorm;
  bool final_norm = true;
  Activation ffn_act = Activation::gelu;
  double leaky_slope = 0.01;
  SlopeScope slope_scope = SlopeScope::per_layer;
  FfnKind ffn_kind = FfnKind::standard;
  int ffn_layers = -1;
  bool ffn_scaling = false;
  double ffn_alpha_init = 1.0, ffn_beta_init = 1.0;
  LinearGroups weight_norm, spectral_norm;
  bool temperature = false;
  TemperatureParam temperature_param = TemperatureParam::exp;
  double temperature_init = 1.0;
  double rotary_pct = 0.25;
  double rotary_base = 10000.0;
  bool parallel_residual = false;
  bool tie_embeddings = true;
  double init_std = 0.02;
  EntropyRegConfig entropy_reg;

  int d_head() const { return d_model / n_head; }
  // Whether block `layer` has an FFN (ffn_kind != none and layer < ffn_layers when pruned).
  bool has_ffn(int layer) const {
    return ffn_kind != FfnKind::none && (ffn_layers < 0 || layer < ffn_layers);
  }
  bool has_positions() const { return family == Family::gpt2; }
  // Rotated dims per head (pythia only), even.
  int rotary_dims() const;
  bool operator==(const ModelConfig&) const = default;
};

struct TrainConfig {
  int steps = 1000;
  int batch_size = 8;
  int grad_accum = 1;
  int seq_len = 128;  // resolved: model.context unless set
  double lr = 1e-3, min_lr = 0.0;
  std::string schedule = "linear";  // linear | cosine | constant
  double warmup = 0.05;             // fraction of steps if < 1, else a step count
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.1;
  double grad_clip = 1.0;
  uint64_t seed = 1234;
  int eval_every = 100, eval_batches = 20;
  int checkpoint_every = 500;
  int threads = 0;
  int warmup_steps() const { return warmup < 1.0 ? int(warmup * steps + 0.5) : int(warmup); }
  bool operator==(const TrainConfig&) const = default;
};

struct DataConfig {
  std::string dir;  // empty = built-in synthetic corpus
  std::string train_split = "train", valid_split = "valid";
  std::string tokenizer = "gpt2";
  bool operator==(const DataConfig&) const = default;
};

struct RunConfig {
  ModelConfig model;
  TrainConfig train;
  DataConfig data;
  bool operator==(const RunConfig&) const = default;
};

// Enum names as written in JSON.
const char* to_string(Family);
const char* to_string(Norm);
const char* to_string(Activation);
const char* to_string(SlopeScope);
const char* to_string(FfnKind);
const char* to_string(TemperatureParam);
const char* to_string(EntropyReduction);

// Parsing validates every key (unknown keys, wrong types and out-of-range values throw
// aero::Error naming the key, e.g. "model.n_head"). `where` prefixes messages (a file name).
ModelConfig model_config_from_json(const nlohmann::json& j, const std::string& where = "");
nlohmann::json to_json(const ModelConfig& c);
RunConfig run_config_from_json(const nlohmann::json& j, const std::string& where = "");
nlohmann::json to_json(const RunConfig& c);

// Presets and rungs. preset_json(name) is a full {"model","train","data"} object;
// rung_json(name) is a patch of "model" keys. Unknown names throw listing the known ones.
std::vector<std::string> preset_names();
std::vector<std::string> rung_names();  // the named ones; "-kN" suffixes and WN/SN forms too
nlohmann::json preset_json(const std::string& name);
nlohmann::json rung_json(const std::string& rung);

// Applies "key=value" (key dotted, e.g. "model.norm", "train.lr",
// "model.entropy_reg.lambda"); value parsed as JSON when it is valid JSON, else a string.
void apply_set(nlohmann::json& j, const std::string& assignment);

// The one way every command builds its configuration:
//  - start from preset (default "tiny") unless config_path is given; a config file is
//    merged on top of the preset only if a preset is named explicitly;
//  - apply the rung patch (if any) to "model";
//  - apply each --set in order; then parse and validate.
RunConfig build_run_config(const std::string& config_path, const std::string& preset,
                           const std::string& rung, const std::vector<std::string>& sets);

}  // namespace aero::model
