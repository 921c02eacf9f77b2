// Parsing, validation, presets and rungs of the run configuration (docs/config.md).
#include "model/config.h"

#include <cmath>
#include <regex>
#include <set>

#include "core/error.h"
#include "core/files.h"

namespace aero::model {
using nlohmann::json;

const char* to_string(Family v) { return v == Family::gpt2 ? "gpt2" : "pythia"; }
const char* to_string(Norm v) { return v == Norm::layernorm ? "layernorm" : "none"; }
const char* to_string(Activation v) {
  switch (v) {
    case Activation::gelu: return "gelu";
    case Activation::relu: return "relu";
    case Activation::leaky_relu: return "leaky_relu";
    case Activation::learnable_leaky_relu: return "learnable_leaky_relu";
    case Activation::identity: return "identity";
    case Activation::gelu_exact: return "gelu_exact";
  }
  return "?";
}
const char* to_string(SlopeScope v) { return v == SlopeScope::global ? "global" : "per_layer"; }
const char* to_string(FfnKind v) {
  return v == FfnKind::standard ? "standard" : v == FfnKind::fused ? "fused" : "none";
}
const char* to_string(TemperatureParam v) {
  return v == TemperatureParam::exp ? "exp" : v == TemperatureParam::direct ? "direct" : "offset";
}
const char* to_string(EntropyReduction v) { return v == EntropyReduction::sum ? "sum" : "mean"; }

int ModelConfig::rotary_dims() const {
  if (family != Family::pythia) return 0;
  int r = int(d_head() * rotary_pct);
  return r - r % 2;
}

namespace {

// Reads the keys of one JSON object, each at most once, remembering which were consumed so
// that leftovers (typos) are reported by their full dotted name.
class Reader {
 public:
  Reader(const json& j, std::string prefix, std::string where)
      : j_(j), prefix_(std::move(prefix)), where_(std::move(where)) {
    if (!j_.is_object()) err(prefix_.empty() ? "<root>" : prefix_.substr(0, prefix_.size() - 1), "expected a JSON object");
  }
  [[noreturn]] void err(const std::string& key, const std::string& why) const {
    fail(where_.empty() ? "" : where_ + ": ", "config key '", key, "': ", why);
  }
  std::string name(const std::string& k) const { return prefix_ + k; }
  bool has(const std::string& k) const { return j_.contains(k) && !j_.at(k).is_null(); }
  const json* get(const std::string& k) {
    seen_.insert(k);
    return has(k) ? &j_.at(k) : nullptr;
  }
  void integer(const std::string& k, int& out, long lo, long hi) {
    if (auto* v = get(k)) {
      if (!v->is_number_integer() && !(v->is_number_float() && std::floor(v->get<double>()) == v->get<double>()))
        err(name(k), "expected an integer, got " + v->dump());
      double d = v->get<double>();
      if (d < lo || d > hi)
        err(name(k), "value " + v->dump() + " out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
      out = int(d);
    }
  }
  void u64(const std::string& k, uint64_t& out) {
    if (auto* v = get(k)) {
      if (!v->is_number_integer() || v->get<double>() < 0) err(name(k), "expected a non-negative integer, got " + v->dump());
      out = v->get<uint64_t>();
    }
  }
  void number(const std::string& k, double& out, double lo, double hi, bool lo_open = false) {
    if (auto* v = get(k)) {
      if (!v->is_number()) err(name(k), "expected a number, got " + v->dump());
      double d = v->get<double>();
      if (!std::isfinite(d) || d < lo || d > hi || (lo_open && d == lo)) {
        std::ostringstream os;
        os << "value " << v->dump() << " out of range " << (lo_open ? "(" : "[") << lo << ", " << hi << "]";
        err(name(k), os.str());
      }
      out = d;
    }
  }
  void boolean(const std::string& k, bool& out) {
    if (auto* v = get(k)) {
      if (!v->is_boolean()) err(name(k), "expected true or false, got " + v->dump());
      out = v->get<bool>();
    }
  }
  void string(const std::string& k, std::string& out) {
    if (auto* v = get(k)) {
      if (!v->is_string()) err(name(k), "expected a string, got " + v->dump());
      out = v->get<std::string>();
    }
  }
  template <typename E>
  void choice(const std::string& k, E& out, std::initializer_list<E> options) {
    if (auto* v = get(k)) {
      std::string all;
      for (E o : options) {
        if (v->is_string() && v->get<std::string>() == to_string(o)) {
          out = o;
          return;
        }
        all += std::string(all.empty() ? "" : ", ") + to_string(o);
      }
      err(name(k), "expected one of " + all + "; got " + v->dump());
    }
  }
  void groups(const std::string& k, LinearGroups& out) {
    if (auto* v = get(k)) {
      std::vector<std::string> items;
      if (v->is_string()) {  // "qk,ffn" from the command line
        std::string s = v->get<std::string>(), cur;
        for (char c : s + ",") {
          if (c == ',' || c == '+') {
            if (!cur.empty()) items.push_back(cur);
            cur.clear();
          } else if (c != ' ') {
            cur += c;
          }
        }
      } else if (v->is_array()) {
        for (auto& e : *v) {
          if (!e.is_string()) err(name(k), "expected a list of qk, v, o, ffn; got " + v->dump());
          items.push_back(e.get<std::string>());
        }
      } else {
        err(name(k), "expected a list of qk, v, o, ffn; got " + v->dump());
      }
      out = {};
      for (auto& s : items) {
        if (s == "qk") out.qk = true;
        else if (s == "v") out.v = true;
        else if (s == "o") out.o = true;
        else if (s == "ffn") out.ffn = true;
        else err(name(k), "unknown linear group '" + s + "' (expected qk, v, o, ffn)");
      }
    }
  }
  void finish() const {
    for (auto& [k, v] : j_.items())
      if (!seen_.count(k)) err(name(k), "unknown key");
  }

 private:
  const json& j_;
  std::string prefix_, where_;
  std::set<std::string> seen_;
};

json groups_json(const LinearGroups& g) {
  json a = json::array();
  if (g.qk) a.push_back("qk");
  if (g.v) a.push_back("v");
  if (g.o) a.push_back("o");
  if (g.ffn) a.push_back("ffn");
  return a;
}

constexpr long kBig = 1L << 30;

}  // namespace

ModelConfig model_config_from_json(const json& j, const std::string& where) {
  ModelConfig c;
  Reader r(j, "model.", where);
  r.choice("family", c.family, {Family::gpt2, Family::pythia});
  bool pythia = c.family == Family::pythia;
  r.integer("n_layer", c.n_layer, 1, 1024);
  r.integer("n_head", c.n_head, 1, 1024);
  r.integer("d_model", c.d_model, 1, 1 << 16);
  r.integer("context", c.context, 1, 1 << 20);
  r.integer("vocab_size", c.vocab_size, 1, kBig);
  c.d_ff = 4 * c.d_model;
  r.integer("d_ff", c.d_ff, 1, kBig);
  r.boolean("bias", c.bias);
  r.choice("norm", c.norm, {Norm::layernorm, Norm::none});
  c.final_norm = c.norm == Norm::layernorm;
  r.boolean("final_norm", c.final_norm);
  r.choice("ffn_act", c.ffn_act,
           {Activation::gelu, Activation::relu, Activation::leaky_relu,
            Activation::learnable_leaky_relu, Activation::identity, Activation::gelu_exact});
  r.number("leaky_slope", c.leaky_slope, -1e3, 1e3);
  r.choice("slope_scope", c.slope_scope, {SlopeScope::global, SlopeScope::per_layer});
  r.choice("ffn_kind", c.ffn_kind, {FfnKind::standard, FfnKind::fused, FfnKind::none});
  r.integer("ffn_layers", c.ffn_layers, -1, 1024);
  r.boolean("ffn_scaling", c.ffn_scaling);
  r.number("ffn_alpha_init", c.ffn_alpha_init, -1e6, 1e6);
  r.number("ffn_beta_init", c.ffn_beta_init, -1e6, 1e6);
  r.groups("weight_norm", c.weight_norm);
  r.groups("spectral_norm", c.spectral_norm);
  r.boolean("temperature", c.temperature);
  r.choice("temperature_param", c.temperature_param,
           {TemperatureParam::exp, TemperatureParam::direct, TemperatureParam::offset});
  c.temperature_init = c.temperature_param == TemperatureParam::offset ? 0.01 : 1.0;
  r.number("temperature_init", c.temperature_init, -1e6, 1e6);
  r.number("rotary_pct", c.rotary_pct, 0.0, 1.0);
  r.number("rotary_base", c.rotary_base, 0.0, 1e12, true);
  c.parallel_residual = pythia;
  r.boolean("parallel_residual", c.parallel_residual);
  c.tie_embeddings = !pythia;
  r.boolean("tie_embeddings", c.tie_embeddings);
  r.number("init_std", c.init_std, 0.0, 10.0);
  if (auto* e = r.get("entropy_reg")) {
    Reader er(*e, "model.entropy_reg.", where);
    auto& g = c.entropy_reg;
    er.boolean("enabled", g.enabled);
    er.number("lambda", g.lambda, 0.0, 1e6);
    er.number("gamma", g.gamma, 0.0, 1e3);
    er.number("theta_init", g.theta_init, -1e3, 1e3);
    er.choice("reduction", g.reduction, {EntropyReduction::sum, EntropyReduction::mean});
    er.finish();
  }
  r.finish();

  // Cross-key checks.
  if (c.d_model % c.n_head != 0)
    r.err("model.n_head", "d_model " + std::to_string(c.d_model) + " is not divisible by n_head " + std::to_string(c.n_head));
  if (c.ffn_layers > c.n_layer)
    r.err("model.ffn_layers", std::to_string(c.ffn_layers) + " exceeds model.n_layer = " + std::to_string(c.n_layer));
  if (c.ffn_kind == FfnKind::fused && c.ffn_act != Activation::identity)
    r.err("model.ffn_act", std::string("a fused FFN (one d x d linear) has no activation; set ffn_act=identity (got ") + to_string(c.ffn_act) + ")");
  if (c.temperature_param == TemperatureParam::exp && c.temperature && !(c.temperature_init > 0))
    r.err("model.temperature_init", "must be > 0 with temperature_param=exp (s = ln t)");
  if (c.temperature_param == TemperatureParam::direct && c.temperature && c.temperature_init == 0)
    r.err("model.temperature_init", "must be nonzero with temperature_param=direct");
  if (c.ffn_scaling && c.ffn_alpha_init == 0)
    r.err("model.ffn_alpha_init", "must be nonzero (the FFN output is divided by alpha)");
  LinearGroups both{c.weight_norm.qk && c.spectral_norm.qk, c.weight_norm.v && c.spectral_norm.v,
                    c.weight_norm.o && c.spectral_norm.o, c.weight_norm.ffn && c.spectral_norm.ffn};
  if (both.any())
    r.err("model.spectral_norm", "a linear group cannot have both weight_norm and spectral_norm");
  return c;
}

json to_json(const ModelConfig& c) {
  json j;
  j["family"] = to_string(c.family);
  j["n_layer"] = c.n_layer;
  j["n_head"] = c.n_head;
  j["d_model"] = c.d_model;
  j["context"] = c.context;
  j["vocab_size"] = c.vocab_size;
  j["d_ff"] = c.d_ff;
  j["bias"] = c.bias;
  j["norm"] = to_string(c.norm);
  j["final_norm"] = c.final_norm;
  j["ffn_act"] = to_string(c.ffn_act);
  j["leaky_slope"] = c.leaky_slope;
  j["slope_scope"] = to_string(c.slope_scope);
  j["ffn_kind"] = to_string(c.ffn_kind);
  j["ffn_layers"] = c.ffn_layers;
  j["ffn_scaling"] = c.ffn_scaling;
  j["ffn_alpha_init"] = c.ffn_alpha_init;
  j["ffn_beta_init"] = c.ffn_beta_init;
  j["weight_norm"] = groups_json(c.weight_norm);
  j["spectral_norm"] = groups_json(c.spectral_norm);
  j["temperature"] = c.temperature;
  j["temperature_param"] = to_string(c.temperature_param);
  j["temperature_init"] = c.temperature_init;
  j["rotary_pct"] = c.rotary_pct;
  j["rotary_base"] = c.rotary_base;
  j["parallel_residual"] = c.parallel_residual;
  j["tie_embeddings"] = c.tie_embeddings;
  j["init_std"] = c.init_std;
  auto& e = c.entropy_reg;
  j["entropy_reg"] = {{"enabled", e.enabled}, {"lambda", e.lambda}, {"gamma", e.gamma},
                      {"theta_init", e.theta_init}, {"reduction", to_string(e.reduction)}};
  return j;
}

RunConfig run_config_from_json(const json& j, const std::string& where) {
  RunConfig c;
  Reader r(j, "", where);
  if (auto* m = r.get("model")) c.model = model_config_from_json(*m, where);
  c.train.seq_len = c.model.context;
  if (auto* t = r.get("train")) {
    Reader tr(*t, "train.", where);
    auto& x = c.train;
    tr.integer("steps", x.steps, 0, kBig);
    tr.integer("batch_size", x.batch_size, 1, kBig);
    tr.integer("grad_accum", x.grad_accum, 1, kBig);
    tr.integer("seq_len", x.seq_len, 1, c.model.context);
    tr.number("lr", x.lr, 0.0, 1e3);
    tr.number("min_lr", x.min_lr, 0.0, 1e3);
    tr.string("schedule", x.schedule);
    if (x.schedule != "linear" && x.schedule != "cosine" && x.schedule != "constant")
      tr.err("train.schedule", "expected one of linear, cosine, constant; got \"" + x.schedule + "\"");
    tr.number("warmup", x.warmup, 0.0, 1e12);
    tr.number("beta1", x.beta1, 0.0, 1.0);
    tr.number("beta2", x.beta2, 0.0, 1.0);
    tr.number("eps", x.eps, 0.0, 1.0);
    tr.number("weight_decay", x.weight_decay, 0.0, 1e3);
    tr.number("grad_clip", x.grad_clip, 0.0, 1e12);
    tr.u64("seed", x.seed);
    tr.integer("eval_every", x.eval_every, 0, kBig);
    tr.integer("eval_batches", x.eval_batches, 0, kBig);
    tr.integer("checkpoint_every", x.checkpoint_every, 0, kBig);
    tr.integer("threads", x.threads, 0, 4096);
    tr.finish();
  }
  if (auto* d = r.get("data")) {
    Reader dr(*d, "data.", where);
    dr.string("dir", c.data.dir);
    dr.string("train_split", c.data.train_split);
    dr.string("valid_split", c.data.valid_split);
    dr.string("tokenizer", c.data.tokenizer);
    dr.finish();
  }
  r.finish();
  return c;
}

json to_json(const RunConfig& c) {
  json j;
  j["model"] = to_json(c.model);
  auto& x = c.train;
  j["train"] = {{"steps", x.steps}, {"batch_size", x.batch_size}, {"grad_accum", x.grad_accum},
                {"seq_len", x.seq_len}, {"lr", x.lr}, {"min_lr", x.min_lr},
                {"schedule", x.schedule}, {"warmup", x.warmup}, {"beta1", x.beta1},
                {"beta2", x.beta2}, {"eps", x.eps}, {"weight_decay", x.weight_decay},
                {"grad_clip", x.grad_clip}, {"seed", x.seed}, {"eval_every", x.eval_every},
                {"eval_batches", x.eval_batches}, {"checkpoint_every", x.checkpoint_every},
                {"threads", x.threads}};
  j["data"] = {{"dir", c.data.dir}, {"train_split", c.data.train_split},
               {"valid_split", c.data.valid_split}, {"tokenizer", c.data.tokenizer}};
  return j;
}

// ---------------------------------------------------------------------------------------
// Presets: model sizes of the paper (SPEC section 4) plus CPU-sized ones.

std::vector<std::string> preset_names() {
  return {"tiny", "small", "paper", "gpt2-small", "gpt2-18l", "pythia-tiny", "pythia-70m"};
}

json preset_json(const std::string& name) {
  json j = {{"model", json::object()}, {"train", json::object()}, {"data", json::object()}};
  auto& m = j["model"];
  auto& t = j["train"];
  if (name == "tiny") {
    // Trains in minutes on 2 cores; the trainer may shrink vocab_size to the data's.
    m = {{"family", "gpt2"}, {"n_layer", 4}, {"n_head", 4}, {"d_model", 128}, {"context", 128}};
    t = {{"steps", 1000}, {"batch_size", 8}, {"lr", 1e-3}, {"eval_every", 100}};
  } else if (name == "small") {
    // GPT-2 small's shape at T=128 with a budget of a few minutes per rung on one H200
    // (aero-gpu; 1500 steps x 256 x 128 = 49M tokens): the ladder at the paper's shape. lr 6e-4
    // with 300 warmup steps: at the paper's 1e-3 and 5% warmup (75 steps) four LayerNorm-free
    // rungs diverged in the first 140 steps (docs/ladder_small_results.md).
    m = {{"family", "gpt2"}, {"n_layer", 12}, {"n_head", 12}, {"d_model", 768}, {"context", 128},
         {"vocab_size", 50257}};
    t = {{"steps", 1500}, {"batch_size", 256}, {"lr", 6e-4}, {"warmup", 300}, {"eval_every", 250},
         {"eval_batches", 8}, {"checkpoint_every", 500}};
  } else if (name == "gpt2-small" || name == "paper") {
    // "paper": the paper's GPT-2 CodeParrot setup (SPEC section 4), for users with GPUs.
    m = {{"family", "gpt2"}, {"n_layer", 12}, {"n_head", 12}, {"d_model", 768}, {"context", 128},
         {"vocab_size", 50257}};
    // CodeParrot setup: 512 sequences per step, ~32K steps (SPEC section 4).
    t = {{"steps", 32000}, {"batch_size", 64}, {"grad_accum", 8}, {"lr", 1e-3},
         {"eval_every", 500}, {"checkpoint_every", 1000}};
  } else if (name == "gpt2-18l") {
    m = {{"family", "gpt2"}, {"n_layer", 18}, {"n_head", 12}, {"d_model", 768}, {"context", 128},
         {"vocab_size", 50257}};
    t = {{"steps", 32000}, {"batch_size", 64}, {"grad_accum", 8}, {"lr", 1e-3},
         {"eval_every", 500}, {"checkpoint_every", 1000}};
  } else if (name == "pythia-tiny") {
    // Pythia's block (rotary on a quarter of each head, parallel attention + MLP, untied head)
    // at the tiny preset's CPU size.
    m = {{"family", "pythia"}, {"n_layer", 4}, {"n_head", 4}, {"d_model", 128}, {"context", 128},
         {"rotary_pct", 0.25}, {"parallel_residual", true}, {"tie_embeddings", false}};
    t = {{"steps", 1000}, {"batch_size", 8}, {"lr", 1e-3}, {"eval_every", 100}};
  } else if (name == "pythia-70m") {
    m = {{"family", "pythia"}, {"n_layer", 6}, {"n_head", 8}, {"d_model", 512}, {"context", 128},
         {"vocab_size", 50257}, {"rotary_pct", 0.25}, {"parallel_residual", true},
         {"tie_embeddings", false}};
    t = {{"steps", 32000}, {"batch_size", 64}, {"grad_accum", 8}, {"lr", 1e-3},
         {"eval_every", 500}, {"checkpoint_every", 1000}};
  } else {
    std::string all;
    for (auto& n : preset_names()) all += (all.empty() ? "" : ", ") + n;
    fail("unknown preset '", name, "' (known: ", all, ")");
  }
  return j;
}

// ---------------------------------------------------------------------------------------
// Rungs of the AERO ladder (SPEC section 2), as patches of "model".

namespace {
struct RungDef {
  const char* name;
  const char* patch;  // JSON
};
const RungDef kRungs[] = {
    {"SM+LN+G", R"({"norm":"layernorm","ffn_act":"gelu"})"},
    {"SM+LN+R", R"({"norm":"layernorm","ffn_act":"relu"})"},
    {"SM+LN+LR", R"({"norm":"layernorm","ffn_act":"learnable_leaky_relu"})"},
    {"SM+LN", R"({"norm":"layernorm","ffn_act":"identity"})"},
    {"SM+G", R"({"norm":"none","ffn_act":"gelu"})"},
    {"SM+R", R"({"norm":"none","ffn_act":"relu"})"},
    {"SM+LR", R"({"norm":"none","ffn_act":"learnable_leaky_relu"})"},
    {"SM", R"({"norm":"none","ffn_act":"identity"})"},
    {"SM+ScFFN", R"({"norm":"none","ffn_act":"identity","ffn_scaling":true})"},
    {"SM+ScFuFFN", R"({"norm":"none","ffn_act":"identity","ffn_scaling":true,"ffn_kind":"fused"})"},
    {"SM(t)+ScFuFFN",
     R"({"norm":"none","ffn_act":"identity","ffn_scaling":true,"ffn_kind":"fused","temperature":true})"},
    {"EReg(SM+ScFuFFN)",
     R"({"norm":"none","ffn_act":"identity","ffn_scaling":true,"ffn_kind":"fused","entropy_reg":{"enabled":true}})"},
    {"EReg(SM(t)+ScFuFFN)",
     R"({"norm":"none","ffn_act":"identity","ffn_scaling":true,"ffn_kind":"fused","temperature":true,"entropy_reg":{"enabled":true}})"},
};

// Recursive merge of a patch into a JSON object (objects merge, everything else replaces).
void merge(json& dst, const json& patch) {
  for (auto& [k, v] : patch.items()) {
    if (v.is_object() && dst.contains(k) && dst[k].is_object()) merge(dst[k], v);
    else dst[k] = v;
  }
}
}  // namespace

std::vector<std::string> rung_names() {
  std::vector<std::string> v;
  for (auto& r : kRungs) v.push_back(r.name);
  v.push_back("SM+ScFuFFN-k6");
  v.push_back("EReg(SM(t)+ScFuFFN)-k6");
  v.push_back("SM+WN-ffn");
  v.push_back("SM+SN-ffn");
  v.push_back("SM+WN-qk+ffn");
  v.push_back("SM+SN-qkvo+ffn");
  return v;
}

json rung_json(const std::string& rung) {
  std::string base = rung;
  json extra = json::object();
  // "-kN": keep the FFN only in the first N layers.
  static const std::regex kSuffix(R"(^(.*)-k([0-9]+)$)");
  std::smatch m;
  if (std::regex_match(rung, m, kSuffix)) {
    base = m[1];
    extra["ffn_layers"] = std::stoi(m[2]);
  }
  for (auto& r : kRungs) {
    if (base == r.name) {
      json p = json::parse(r.patch);
      merge(p, extra);
      return p;
    }
  }
  // "SM+WN-<groups>" / "SM+SN-<groups>": Softmax-only with weight / spectral normalization on
  // the named groups (SPEC 5.4), groups joined by '+': qk, qkv (= qk+v), qkvo, v, o, ffn.
  static const std::regex kNorm(R"(^SM\+(WN|SN)-([a-z+]+)$)");
  if (std::regex_match(base, m, kNorm)) {
    json groups = json::array();
    std::string list = m[2].str() + "+", cur;
    for (char c : list) {
      if (c != '+') {
        cur += c;
        continue;
      }
      if (cur == "qk" || cur == "v" || cur == "o" || cur == "ffn") groups.push_back(cur);
      else if (cur == "qkv") groups.insert(groups.end(), {"qk", "v"});
      else if (cur == "qkvo") groups.insert(groups.end(), {"qk", "v", "o"});
      else fail("rung '", rung, "': unknown linear group '", cur, "' (expected qk, qkv, qkvo, v, o, ffn)");
      cur.clear();
    }
    json p = {{"norm", "none"}, {"ffn_act", "identity"},
              {m[1] == "WN" ? "weight_norm" : "spectral_norm", groups}};
    merge(p, extra);
    return p;
  }
  std::string all;
  for (auto& n : rung_names()) all += (all.empty() ? "" : ", ") + n;
  fail("unknown rung '", rung, "' (known: ", all, "; any rung may end in -kN)");
}

void apply_set(json& j, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    fail("--set '", assignment, "': expected key=value (e.g. model.norm=none)");
  std::string key = assignment.substr(0, eq), val = assignment.substr(eq + 1);
  json value;
  try {
    value = json::parse(val);
  } catch (const json::parse_error&) {
    value = val;  // bare words: none, layernorm, cosine, a path...
  }
  json* node = &j;
  size_t start = 0;
  while (true) {
    size_t dot = key.find('.', start);
    std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (part.empty()) fail("--set '", assignment, "': empty component in key '", key, "'");
    if (dot == std::string::npos) {
      (*node)[part] = value;
      break;
    }
    if (!node->contains(part)) (*node)[part] = json::object();
    node = &(*node)[part];
    if (!node->is_object()) fail("--set '", assignment, "': '", key.substr(0, dot), "' is not a section");
    start = dot + 1;
  }
}

RunConfig build_run_config(const std::string& config_path, const std::string& preset,
                           const std::string& rung, const std::vector<std::string>& sets) {
  json j;
  if (!preset.empty() || config_path.empty()) j = preset_json(preset.empty() ? "tiny" : preset);
  std::string where;
  if (!config_path.empty()) {
    json f;
    try {
      f = json::parse(read_file(config_path));
    } catch (const json::parse_error& e) {
      fail(config_path, ": not valid JSON: ", e.what());
    }
    if (!f.is_object()) fail(config_path, ": expected a JSON object {\"model\": ..., \"train\": ..., \"data\": ...}");
    if (j.is_null()) j = json::object();
    merge(j, f);
    where = config_path;
  }
  if (!rung.empty()) {
    if (!j.contains("model")) j["model"] = json::object();
    merge(j["model"], rung_json(rung));
  }
  for (auto& s : sets) apply_set(j, s);
  return run_config_from_json(j, where);
}

}  // namespace aero::model
