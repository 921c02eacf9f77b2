#include "interop/hf.h"

#include <filesystem>
#include <functional>
#include <set>

#include "core/error.h"
#include "core/files.h"
#include "core/safetensors.h"

namespace aero::interop {

namespace fs = std::filesystem;
using nlohmann::json;
using model::ModelConfig;

namespace {

// ---------------------------------------------------------------- reading the checkpoint

// All tensors of DIR, from model.safetensors or the shards named by the index file.
SafeTensors read_hf_tensors(const std::string& dir) {
  std::string single = (fs::path(dir) / "model.safetensors").string();
  std::string index = (fs::path(dir) / "model.safetensors.index.json").string();
  if (file_exists(single)) return SafeTensors::load(single);
  AERO_CHECK(file_exists(index), dir, ": neither model.safetensors nor ",
             "model.safetensors.index.json found (only safetensors checkpoints are read; ",
             "convert pytorch_model.bin with save_pretrained(safe_serialization=True))");
  json idx;
  try {
    idx = json::parse(read_file(index));
  } catch (const json::exception& e) {
    fail(index, ": not valid JSON: ", e.what());
  }
  AERO_CHECK(idx.contains("weight_map") && idx["weight_map"].is_object(), index,
             ": no 'weight_map' object");
  std::set<std::string> shards;
  for (auto& [name, file] : idx["weight_map"].items()) shards.insert(file.get<std::string>());
  SafeTensors all;
  for (const auto& s : shards) {
    SafeTensors part = SafeTensors::load((fs::path(dir) / s).string());
    for (auto& [name, t] : part.tensors) all.tensors[name] = std::move(t);
  }
  for (auto& [name, file] : idx["weight_map"].items())
    AERO_CHECK(all.has(name), index, ": tensor '", name, "' is listed in shard ",
               file.get<std::string>(), " but not stored there");
  return all;
}

template <typename T>
T field(const json& cfg, const std::string& key, const std::string& src) {
  AERO_CHECK(cfg.contains(key) && !cfg[key].is_null(), src, ": field '", key, "' is missing");
  try {
    return cfg[key].get<T>();
  } catch (const json::exception&) {
    fail(src, ": field '", key, "' has the wrong type (", cfg[key].dump(), ")");
  }
}

template <typename T>
T field_or(const json& cfg, const std::string& key, T dflt) {
  if (!cfg.contains(key) || cfg[key].is_null()) return dflt;
  return cfg[key].get<T>();
}

// Float32 copy of a tensor of the expected shape.
std::vector<float> take(const SafeTensors& st, const std::string& name,
                        const std::vector<int64_t>& shape, const std::string& src) {
  AERO_CHECK(st.has(name), src, ": tensor '", name, "' is missing");
  const StTensor& t = st.at(name);
  AERO_CHECK(t.shape == shape, src, ": tensor '", name, "' has shape ", json(t.shape).dump(),
             ", expected ", json(shape).dump());
  return t.to_f32(name);
}

std::vector<float> transpose(const std::vector<float>& a, int64_t rows, int64_t cols) {
  std::vector<float> b(a.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) b[size_t(c * rows + r)] = a[size_t(r * cols + c)];
  return b;
}

void put(AeroWeights& w, const std::string& name, std::vector<float> data,
         std::vector<int64_t> shape) {
  w.tensors[name] = std::move(data);
  w.shapes[name] = std::move(shape);
}

void check_eps(const json& cfg, const std::string& key, const std::string& src) {
  double eps = field_or<double>(cfg, key, 1e-5);
  AERO_CHECK(std::abs(eps - 1e-5) < 1e-12, src, ": ", key, " = ", eps,
             " is not supported (aero's LayerNorm uses 1e-5)");
}

model::Activation activation_from_hf(const std::string& act, const std::string& src) {
  if (act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu_fast")
    return model::Activation::gelu;
  if (act == "gelu") return model::Activation::gelu_exact;
  if (act == "relu") return model::Activation::relu;
  fail(src, ": activation '", act, "' is not supported (gelu_new, gelu_pytorch_tanh, gelu, relu)");
}

// ---------------------------------------------------------------- GPT-2

AeroWeights import_gpt2(const json& cfg, const SafeTensors& st, const std::string& src) {
  ModelConfig c;
  c.family = model::Family::gpt2;
  c.n_layer = field<int>(cfg, "n_layer", src);
  c.n_head = field<int>(cfg, "n_head", src);
  c.d_model = field<int>(cfg, "n_embd", src);
  c.context = field_or<int>(cfg, "n_positions", field_or<int>(cfg, "n_ctx", 1024));
  c.vocab_size = field<int>(cfg, "vocab_size", src);
  c.d_ff = field_or<int>(cfg, "n_inner", 4 * c.d_model);
  c.ffn_act = activation_from_hf(field_or<std::string>(cfg, "activation_function", "gelu_new"), src);
  c.tie_embeddings = field_or<bool>(cfg, "tie_word_embeddings", true);
  c.norm = model::Norm::layernorm;
  c.final_norm = true;
  c.bias = true;
  c.parallel_residual = false;
  check_eps(cfg, "layer_norm_epsilon", src);
  AERO_CHECK(field_or<bool>(cfg, "scale_attn_weights", true), src,
             ": scale_attn_weights=false is not supported");
  AERO_CHECK(!field_or<bool>(cfg, "scale_attn_by_inverse_layer_idx", false), src,
             ": scale_attn_by_inverse_layer_idx is not supported");

  // GPT2LMHeadModel prefixes "transformer."; a bare GPT2Model does not.
  std::string p = st.has("transformer.wte.weight") ? "transformer." : "";
  const int64_t d = c.d_model, V = c.vocab_size, F = c.d_ff;
  AeroWeights w;
  put(w, "wte", take(st, p + "wte.weight", {V, d}, src), {V, d});
  put(w, "wpe", take(st, p + "wpe.weight", {c.context, d}, src), {c.context, d});
  for (int i = 0; i < c.n_layer; ++i) {
    std::string h = p + "h." + std::to_string(i) + ".";
    std::string a = "blocks." + std::to_string(i) + ".";
    put(w, a + "ln1.weight", take(st, h + "ln_1.weight", {d}, src), {d});
    put(w, a + "ln1.bias", take(st, h + "ln_1.bias", {d}, src), {d});
    put(w, a + "attn.qkv.weight", transpose(take(st, h + "attn.c_attn.weight", {d, 3 * d}, src), d, 3 * d), {3 * d, d});
    put(w, a + "attn.qkv.bias", take(st, h + "attn.c_attn.bias", {3 * d}, src), {3 * d});
    put(w, a + "attn.proj.weight", transpose(take(st, h + "attn.c_proj.weight", {d, d}, src), d, d), {d, d});
    put(w, a + "attn.proj.bias", take(st, h + "attn.c_proj.bias", {d}, src), {d});
    put(w, a + "ln2.weight", take(st, h + "ln_2.weight", {d}, src), {d});
    put(w, a + "ln2.bias", take(st, h + "ln_2.bias", {d}, src), {d});
    put(w, a + "ffn.fc.weight", transpose(take(st, h + "mlp.c_fc.weight", {d, F}, src), d, F), {F, d});
    put(w, a + "ffn.fc.bias", take(st, h + "mlp.c_fc.bias", {F}, src), {F});
    put(w, a + "ffn.proj.weight", transpose(take(st, h + "mlp.c_proj.weight", {F, d}, src), F, d), {d, F});
    put(w, a + "ffn.proj.bias", take(st, h + "mlp.c_proj.bias", {d}, src), {d});
  }
  put(w, "ln_f.weight", take(st, p + "ln_f.weight", {d}, src), {d});
  put(w, "ln_f.bias", take(st, p + "ln_f.bias", {d}, src), {d});
  if (!c.tie_embeddings) put(w, "lm_head.weight", take(st, "lm_head.weight", {V, d}, src), {V, d});
  w.config = c;
  return w;
}

// ---------------------------------------------------------------- GPT-NeoX

// NeoX groups qkv rows per head (h, part, c); aero by part (part, h, c). to_aero picks the
// direction.
std::vector<float> regroup_qkv(const std::vector<float>& x, int H, int dk, int cols, bool to_aero) {
  std::vector<float> y(x.size());
  for (int h = 0; h < H; ++h)
    for (int s = 0; s < 3; ++s)
      for (int c = 0; c < dk; ++c) {
        size_t neox = size_t((h * 3 + s) * dk + c), aero = size_t((s * H + h) * dk + c);
        size_t from = to_aero ? neox : aero, to = to_aero ? aero : neox;
        std::copy(x.begin() + long(from * size_t(cols)), x.begin() + long((from + 1) * size_t(cols)),
                  y.begin() + long(to * size_t(cols)));
      }
  return y;
}

AeroWeights import_neox(const json& cfg, const SafeTensors& st, const std::string& src) {
  ModelConfig c;
  c.family = model::Family::pythia;
  c.n_layer = field<int>(cfg, "num_hidden_layers", src);
  c.n_head = field<int>(cfg, "num_attention_heads", src);
  c.d_model = field<int>(cfg, "hidden_size", src);
  c.context = field_or<int>(cfg, "max_position_embeddings", 2048);
  c.vocab_size = field<int>(cfg, "vocab_size", src);
  c.d_ff = field<int>(cfg, "intermediate_size", src);
  c.ffn_act = activation_from_hf(field_or<std::string>(cfg, "hidden_act", "gelu"), src);
  c.tie_embeddings = field_or<bool>(cfg, "tie_word_embeddings", false);
  c.parallel_residual = field_or<bool>(cfg, "use_parallel_residual", true);
  // transformers < 5 writes rotary_pct / rotary_emb_base; 5.x writes rope_parameters.
  json rope = cfg.contains("rope_parameters") && cfg["rope_parameters"].is_object()
                  ? cfg["rope_parameters"] : json::object();
  c.rotary_pct = field_or<double>(rope, "partial_rotary_factor",
                                  field_or<double>(cfg, "rotary_pct", field_or<double>(cfg, "partial_rotary_factor", 0.25)));
  c.rotary_base = field_or<double>(rope, "rope_theta",
                                   field_or<double>(cfg, "rotary_emb_base", field_or<double>(cfg, "rope_theta", 10000.0)));
  std::string rope_type = field_or<std::string>(rope, "rope_type", "default");
  AERO_CHECK(rope_type == "default", src, ": rope_parameters.rope_type '", rope_type,
             "' is not supported (only plain rotary embeddings)");
  c.norm = model::Norm::layernorm;
  c.final_norm = true;
  c.bias = field_or<bool>(cfg, "attention_bias", true);
  AERO_CHECK(c.bias, src, ": attention_bias=false is not supported (aero's bias switch covers ",
             "every linear layer)");
  check_eps(cfg, "layer_norm_eps", src);
  if (cfg.contains("rope_scaling") && !cfg["rope_scaling"].is_null()) {
    const json& rs = cfg["rope_scaling"];
    std::string type = rs.is_object() ? field_or<std::string>(rs, "rope_type", field_or<std::string>(rs, "type", "default")) : "?";
    AERO_CHECK(type == "default", src, ": rope_scaling ", rs.dump(), " is not supported");
  }

  std::string p = st.has("gpt_neox.embed_in.weight") ? "gpt_neox." : "";
  const int64_t d = c.d_model, V = c.vocab_size, F = c.d_ff;
  const int H = c.n_head, dk = c.d_head();
  AeroWeights w;
  put(w, "wte", take(st, p + "embed_in.weight", {V, d}, src), {V, d});
  for (int i = 0; i < c.n_layer; ++i) {
    std::string h = p + "layers." + std::to_string(i) + ".";
    std::string a = "blocks." + std::to_string(i) + ".";
    put(w, a + "ln1.weight", take(st, h + "input_layernorm.weight", {d}, src), {d});
    put(w, a + "ln1.bias", take(st, h + "input_layernorm.bias", {d}, src), {d});
    put(w, a + "attn.qkv.weight", regroup_qkv(take(st, h + "attention.query_key_value.weight", {3 * d, d}, src), H, dk, int(d), true), {3 * d, d});
    put(w, a + "attn.qkv.bias", regroup_qkv(take(st, h + "attention.query_key_value.bias", {3 * d}, src), H, dk, 1, true), {3 * d});
    put(w, a + "attn.proj.weight", take(st, h + "attention.dense.weight", {d, d}, src), {d, d});
    put(w, a + "attn.proj.bias", take(st, h + "attention.dense.bias", {d}, src), {d});
    put(w, a + "ln2.weight", take(st, h + "post_attention_layernorm.weight", {d}, src), {d});
    put(w, a + "ln2.bias", take(st, h + "post_attention_layernorm.bias", {d}, src), {d});
    put(w, a + "ffn.fc.weight", take(st, h + "mlp.dense_h_to_4h.weight", {F, d}, src), {F, d});
    put(w, a + "ffn.fc.bias", take(st, h + "mlp.dense_h_to_4h.bias", {F}, src), {F});
    put(w, a + "ffn.proj.weight", take(st, h + "mlp.dense_4h_to_h.weight", {d, F}, src), {d, F});
    put(w, a + "ffn.proj.bias", take(st, h + "mlp.dense_4h_to_h.bias", {d}, src), {d});
  }
  put(w, "ln_f.weight", take(st, p + "final_layer_norm.weight", {d}, src), {d});
  put(w, "ln_f.bias", take(st, p + "final_layer_norm.bias", {d}, src), {d});
  if (!c.tie_embeddings) put(w, "lm_head.weight", take(st, "embed_out.weight", {V, d}, src), {V, d});
  w.config = c;
  return w;
}

void save_named(const std::map<std::string, std::pair<std::vector<float>, std::vector<int64_t>>>& t,
                const std::string& path, const std::map<std::string, std::string>& meta) {
  SafeTensors st;
  st.metadata = meta;
  for (auto& [name, v] : t) st.tensors[name] = StTensor::from_f32(v.first.data(), v.second);
  st.save(path);
}

}  // namespace

AeroWeights import_hf(const std::string& dir) {
  std::string cfg_path = (fs::path(dir) / "config.json").string();
  AERO_CHECK(file_exists(cfg_path), dir, ": no config.json (expected a Hugging Face model directory)");
  json cfg;
  try {
    cfg = json::parse(read_file(cfg_path));
  } catch (const json::exception& e) {
    fail(cfg_path, ": not valid JSON: ", e.what());
  }
  std::string type = field_or<std::string>(cfg, "model_type", "");
  std::string arch = cfg.contains("architectures") && cfg["architectures"].is_array() &&
                             !cfg["architectures"].empty()
                         ? cfg["architectures"][0].get<std::string>()
                         : "";
  SafeTensors st = read_hf_tensors(dir);
  AeroWeights w;
  if (type == "gpt2")
    w = import_gpt2(cfg, st, cfg_path);
  else if (type == "gpt_neox")
    w = import_neox(cfg, st, cfg_path);
  else
    fail(cfg_path, ": model_type '", type, "' (", arch,
         ") is not supported; aero imports gpt2 (GPT2LMHeadModel) and gpt_neox ",
         "(GPTNeoXForCausalLM)");
  return w;
}

std::string hf_unsupported_reason(const ModelConfig& c) {
  if (c.norm != model::Norm::layernorm) return "LayerNorm-free blocks (norm=none)";
  if (!c.final_norm) return "no final LayerNorm";
  if (c.ffn_kind != model::FfnKind::standard) return "a fused or absent FFN (ffn_kind != standard)";
  if (c.ffn_layers >= 0 && c.ffn_layers < c.n_layer) return "pruned FFNs (ffn_layers)";
  if (c.ffn_scaling) return "learnable FFN scaling (alpha, beta)";
  if (c.temperature) return "learnable softmax temperatures";
  if (c.weight_norm.any() || c.spectral_norm.any()) return "weight or spectral normalization";
  if (!c.bias) return "bias-free linear layers";
  using A = model::Activation;
  if (c.ffn_act != A::gelu && c.ffn_act != A::gelu_exact && c.ffn_act != A::relu)
    return std::string("the activation '") + model::to_string(c.ffn_act) + "'";
  if (c.family == model::Family::gpt2 && c.parallel_residual) return "parallel residual in a GPT-2 model";
  if (c.family == model::Family::pythia && c.tie_embeddings) return "";
  return "";
}

void export_hf(const AeroWeights& w, const std::string& dir) {
  const ModelConfig& c = w.config;
  std::string why = hf_unsupported_reason(c);
  AERO_CHECK(why.empty(), "this model cannot be written as a Hugging Face checkpoint: the ",
             "transformers classes have no ", why, ". Use the plain export (aero safetensors + ",
             "aero_model.json) instead");
  make_dirs(dir);
  auto get = [&](const std::string& n) -> const std::vector<float>& {
    auto it = w.tensors.find(n);
    AERO_CHECK(it != w.tensors.end(), "export: the model has no tensor '", n, "'");
    return it->second;
  };
  const int64_t d = c.d_model, V = c.vocab_size, F = c.d_ff;
  std::map<std::string, std::pair<std::vector<float>, std::vector<int64_t>>> t;
  json cfg;
  using A = model::Activation;
  if (c.family == model::Family::gpt2) {
    std::string act = c.ffn_act == A::gelu ? "gelu_new" : c.ffn_act == A::gelu_exact ? "gelu" : "relu";
    cfg = {{"architectures", {"GPT2LMHeadModel"}}, {"model_type", "gpt2"},
           {"vocab_size", V}, {"n_positions", c.context}, {"n_embd", d},
           {"n_layer", c.n_layer}, {"n_head", c.n_head}, {"n_inner", F},
           {"activation_function", act}, {"layer_norm_epsilon", 1e-5},
           {"resid_pdrop", 0.0}, {"embd_pdrop", 0.0}, {"attn_pdrop", 0.0},
           {"initializer_range", c.init_std}, {"tie_word_embeddings", c.tie_embeddings},
           {"bos_token_id", 50256}, {"eos_token_id", 50256}, {"torch_dtype", "float32"}};
    const std::string p = "transformer.";
    t[p + "wte.weight"] = {get("wte"), {V, d}};
    t[p + "wpe.weight"] = {get("wpe"), {c.context, d}};
    for (int i = 0; i < c.n_layer; ++i) {
      std::string h = p + "h." + std::to_string(i) + ".", a = "blocks." + std::to_string(i) + ".";
      t[h + "ln_1.weight"] = {get(a + "ln1.weight"), {d}};
      t[h + "ln_1.bias"] = {get(a + "ln1.bias"), {d}};
      t[h + "attn.c_attn.weight"] = {transpose(get(a + "attn.qkv.weight"), 3 * d, d), {d, 3 * d}};
      t[h + "attn.c_attn.bias"] = {get(a + "attn.qkv.bias"), {3 * d}};
      t[h + "attn.c_proj.weight"] = {transpose(get(a + "attn.proj.weight"), d, d), {d, d}};
      t[h + "attn.c_proj.bias"] = {get(a + "attn.proj.bias"), {d}};
      t[h + "ln_2.weight"] = {get(a + "ln2.weight"), {d}};
      t[h + "ln_2.bias"] = {get(a + "ln2.bias"), {d}};
      t[h + "mlp.c_fc.weight"] = {transpose(get(a + "ffn.fc.weight"), F, d), {d, F}};
      t[h + "mlp.c_fc.bias"] = {get(a + "ffn.fc.bias"), {F}};
      t[h + "mlp.c_proj.weight"] = {transpose(get(a + "ffn.proj.weight"), d, F), {F, d}};
      t[h + "mlp.c_proj.bias"] = {get(a + "ffn.proj.bias"), {d}};
    }
    t[p + "ln_f.weight"] = {get("ln_f.weight"), {d}};
    t[p + "ln_f.bias"] = {get("ln_f.bias"), {d}};
    t["lm_head.weight"] = {c.tie_embeddings ? get("wte") : get("lm_head.weight"), {V, d}};
  } else {
    std::string act = c.ffn_act == A::gelu ? "gelu_new" : c.ffn_act == A::gelu_exact ? "gelu" : "relu";
    const int H = c.n_head, dk = c.d_head();
    cfg = {{"architectures", {"GPTNeoXForCausalLM"}}, {"model_type", "gpt_neox"},
           {"vocab_size", V}, {"hidden_size", d}, {"num_hidden_layers", c.n_layer},
           {"num_attention_heads", H}, {"intermediate_size", F}, {"hidden_act", act},
           {"rotary_pct", c.rotary_pct}, {"rotary_emb_base", c.rotary_base},
           {"rope_parameters", {{"partial_rotary_factor", c.rotary_pct},
                                {"rope_theta", c.rotary_base}, {"rope_type", "default"}}},
           {"max_position_embeddings", c.context}, {"layer_norm_eps", 1e-5},
           {"use_parallel_residual", c.parallel_residual}, {"attention_bias", true},
           {"tie_word_embeddings", c.tie_embeddings}, {"attention_dropout", 0.0},
           {"hidden_dropout", 0.0}, {"initializer_range", c.init_std},
           {"torch_dtype", "float32"}};
    const std::string p = "gpt_neox.";
    t[p + "embed_in.weight"] = {get("wte"), {V, d}};
    for (int i = 0; i < c.n_layer; ++i) {
      std::string h = p + "layers." + std::to_string(i) + ".", a = "blocks." + std::to_string(i) + ".";
      t[h + "input_layernorm.weight"] = {get(a + "ln1.weight"), {d}};
      t[h + "input_layernorm.bias"] = {get(a + "ln1.bias"), {d}};
      t[h + "attention.query_key_value.weight"] = {regroup_qkv(get(a + "attn.qkv.weight"), H, dk, int(d), false), {3 * d, d}};
      t[h + "attention.query_key_value.bias"] = {regroup_qkv(get(a + "attn.qkv.bias"), H, dk, 1, false), {3 * d}};
      t[h + "attention.dense.weight"] = {get(a + "attn.proj.weight"), {d, d}};
      t[h + "attention.dense.bias"] = {get(a + "attn.proj.bias"), {d}};
      t[h + "post_attention_layernorm.weight"] = {get(a + "ln2.weight"), {d}};
      t[h + "post_attention_layernorm.bias"] = {get(a + "ln2.bias"), {d}};
      t[h + "mlp.dense_h_to_4h.weight"] = {get(a + "ffn.fc.weight"), {F, d}};
      t[h + "mlp.dense_h_to_4h.bias"] = {get(a + "ffn.fc.bias"), {F}};
      t[h + "mlp.dense_4h_to_h.weight"] = {get(a + "ffn.proj.weight"), {d, F}};
      t[h + "mlp.dense_4h_to_h.bias"] = {get(a + "ffn.proj.bias"), {d}};
    }
    t[p + "final_layer_norm.weight"] = {get("ln_f.weight"), {d}};
    t[p + "final_layer_norm.bias"] = {get("ln_f.bias"), {d}};
    t["embed_out.weight"] = {c.tie_embeddings ? get("wte") : get("lm_head.weight"), {V, d}};
  }
  write_file_atomic((fs::path(dir) / "config.json").string(), cfg.dump(2) + "\n");
  save_named(t, (fs::path(dir) / "model.safetensors").string(), {{"format", "pt"}});
}

void export_plain(const AeroWeights& w, const std::string& dir) {
  make_dirs(dir);
  std::map<std::string, std::pair<std::vector<float>, std::vector<int64_t>>> t;
  for (auto& [name, v] : w.tensors) t[name] = {v, w.shapes.at(name)};
  save_named(t, (fs::path(dir) / "model.safetensors").string(),
             {{"format", "pt"}, {"aero_config", model::to_json(w.config).dump()}});
  json desc = {{"format", "aero-plain-1"},
               {"note", "aero model that the Hugging Face classes cannot express; tensor names "
                        "and the math of every switch are in aero's docs/config.md and "
                        "docs/model.md"},
               {"why_not_hf", hf_unsupported_reason(w.config)},
               {"model", model::to_json(w.config)}};
  write_file_atomic((fs::path(dir) / "aero_model.json").string(), desc.dump(2) + "\n");
}

}  // namespace aero::interop
