#include "train/checkpoint.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/files.h"
#include "core/safetensors.h"
#include "train/optimizer.h"

namespace aero::train {

namespace fs = std::filesystem;
using nlohmann::json;

std::string checkpoint_path(const std::string& run_dir, int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "step-%06" PRId64 ".safetensors", step);
  return (fs::path(run_dir) / "ckpt" / name).string();
}

std::string state_path_for(const std::string& w) {
  const std::string ext = ".safetensors";
  if (w.size() >= ext.size() && w.compare(w.size() - ext.size(), ext.size(), ext) == 0)
    return w.substr(0, w.size() - ext.size()) + ".state.safetensors";
  return w + ".state.safetensors";
}

namespace {

std::string u64_hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "%016" PRIx64, v);
  return b;
}

std::string encode_rng(const Rng::State& s) {
  uint64_t spare_bits;
  std::memcpy(&spare_bits, &s.spare, 8);
  return u64_hex(s.s[0]) + "," + u64_hex(s.s[1]) + "," + u64_hex(s.s[2]) + "," +
         u64_hex(s.s[3]) + "," + u64_hex(spare_bits) + "," + (s.has_spare ? "1" : "0");
}

Rng::State decode_rng(const std::string& text, const std::string& src) {
  Rng::State s{};
  uint64_t w[5];
  int has = 0;
  if (std::sscanf(text.c_str(), "%" SCNx64 ",%" SCNx64 ",%" SCNx64 ",%" SCNx64 ",%" SCNx64 ",%d",
                  &w[0], &w[1], &w[2], &w[3], &w[4], &has) != 6)
    fail(src, ": metadata 'rng' is malformed: '", text, "'");
  for (int i = 0; i < 4; ++i) s.s[size_t(i)] = w[i];
  std::memcpy(&s.spare, &w[4], 8);
  s.has_spare = has != 0;
  return s;
}

const std::string& meta(const SafeTensors& st, const std::string& key, const std::string& src) {
  auto it = st.metadata.find(key);
  AERO_CHECK(it != st.metadata.end(), src, ": __metadata__ lacks '", key,
             "' (not an aero checkpoint?)");
  return it->second;
}

int64_t meta_int(const SafeTensors& st, const std::string& key, const std::string& src) {
  const std::string& v = meta(st, key, src);
  try {
    size_t used = 0;
    long long x = std::stoll(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  fail(src, ": __metadata__ '", key, "' is not an integer: '", v, "'");
}

double meta_double(const SafeTensors& st, const std::string& key, const std::string& src) {
  const std::string& v = meta(st, key, src);
  try {
    return std::stod(v);
  } catch (const std::exception&) {
    fail(src, ": __metadata__ '", key, "' is not a number: '", v, "'");
  }
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

SafeTensors load_weights_file(const std::string& path) {
  SafeTensors st = SafeTensors::load(path);  // validates structure, names the tensor
  const std::string& f = meta(st, "format", path);
  AERO_CHECK(f == kCheckpointFormat, path, ": __metadata__.format is '", f, "', expected '",
             kCheckpointFormat, "'");
  return st;
}

model::RunConfig config_of(const SafeTensors& st, const std::string& path) {
  json j;
  try {
    j = json::parse(meta(st, "aero_config", path));
  } catch (const json::exception& e) {
    fail(path, ": __metadata__.aero_config is not valid JSON: ", e.what());
  }
  return model::run_config_from_json(j, path + " (aero_config)");
}

void copy_into_model(const SafeTensors& st, model::Model& m, const std::string& path) {
  size_t matched = 0;
  for (auto& p : m.params()) {
    AERO_CHECK(st.has(p.name), path, ": tensor '", p.name, "' is missing (config mismatch?)");
    const StTensor& t = st.at(p.name);
    AERO_CHECK(t.shape == p.shape, path, ": tensor '", p.name, "' has shape ", shape_str(t.shape),
               ", the model expects ", shape_str(p.shape), " (config mismatch?)");
    AERO_CHECK(t.dtype == DType::F32, path, ": tensor '", p.name, "' is ", dtype_name(t.dtype),
               ", expected F32");
    std::memcpy(p.data, t.bytes.data(), p.size * sizeof(float));
    ++matched;
  }
  if (matched != st.tensors.size()) {
    for (auto& [name, t] : st.tensors) {
      bool known = false;
      for (auto& p : m.params()) known = known || p.name == name;
      AERO_CHECK(known, path, ": unexpected tensor '", name, "' (not a parameter of this model)");
    }
  }
}

}  // namespace

void save_checkpoint(const std::string& weights_path, model::Model& m,
                     const model::RunConfig& cfg, int64_t step, const AdamW* opt,
                     const TrainerState* state) {
  const fs::path parent = fs::path(weights_path).parent_path();
  if (!parent.empty()) make_dirs(parent.string());
  if (opt && state) {
    SafeTensors s;
    opt->save(s);
    s.metadata["format"] = kStateFormat;
    s.metadata["step"] = std::to_string(state->step);
    s.metadata["data_epoch"] = std::to_string(state->data.epoch);
    s.metadata["data_index"] = std::to_string(state->data.index);
    s.metadata["rng"] = encode_rng(state->rng);
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", state->elapsed_s);
    s.metadata["elapsed_s"] = buf;
    s.metadata["stop_reason"] = state->stop_reason;
    s.save(state_path_for(weights_path));
  }
  SafeTensors w;
  for (auto& p : m.params()) w.tensors[p.name] = StTensor::from_f32(p.data, p.shape);
  w.metadata["format"] = kCheckpointFormat;
  w.metadata["aero_config"] = model::to_json(cfg).dump();
  w.metadata["step"] = std::to_string(step);
  w.save(weights_path);
}

std::string save_run_checkpoint(const std::string& run_dir, model::Model& m,
                                const model::RunConfig& cfg, const AdamW& opt,
                                const TrainerState& state) {
  const std::string path = checkpoint_path(run_dir, state.step);
  save_checkpoint(path, m, cfg, state.step, &opt, &state);
  write_file_atomic((fs::path(run_dir) / "ckpt" / "latest").string(),
                    fs::path(path).filename().string() + "\n");
  return path;
}

std::string resolve_checkpoint(const std::string& p) {
  std::error_code ec;
  if (fs::is_regular_file(p, ec)) return p;
  AERO_CHECK(fs::is_directory(p, ec), "checkpoint '", p, "' does not exist");
  for (const fs::path& dir : {fs::path(p) / "ckpt", fs::path(p)}) {
    const fs::path latest = dir / "latest";
    if (!fs::is_regular_file(latest, ec)) continue;
    std::string name = read_file(latest.string());
    while (!name.empty() && (name.back() == '\n' || name.back() == '\r' || name.back() == ' '))
      name.pop_back();
    AERO_CHECK(!name.empty() && name.find('/') == std::string::npos, latest.string(),
               ": expected one checkpoint file name, got '", name, "'");
    const fs::path w = dir / name;
    AERO_CHECK(fs::is_regular_file(w, ec), latest.string(), " names '", name,
               "', which does not exist");
    return w.string();
  }
  fail("'", p, "' is a directory without ckpt/latest: not a run directory with a checkpoint");
}

model::RunConfig read_checkpoint_config(const std::string& path_or_run_dir) {
  const std::string path = resolve_checkpoint(path_or_run_dir);
  return config_of(load_weights_file(path), path);
}

LoadedModel load_model(const std::string& path_or_run_dir, int max_batch, int max_seq) {
  LoadedModel out;
  out.path = resolve_checkpoint(path_or_run_dir);
  SafeTensors st = load_weights_file(out.path);
  out.config = config_of(st, out.path);
  out.step = meta_int(st, "step", out.path);
  if (max_seq <= 0) max_seq = out.config.model.context;
  AERO_CHECK(max_batch >= 1, "load_model: max_batch must be >= 1");
  AERO_CHECK(max_seq <= out.config.model.context, "load_model: max_seq ", max_seq,
             " exceeds the model's context ", out.config.model.context);
  out.model = std::make_unique<model::Model>(out.config.model, max_batch, max_seq);
  copy_into_model(st, *out.model, out.path);
  return out;
}

void load_weights(const std::string& weights_path, model::Model& m) {
  copy_into_model(load_weights_file(weights_path), m, weights_path);
}

void load_trainer_state(const std::string& weights_path, AdamW& opt, TrainerState& state) {
  const std::string sp = state_path_for(weights_path);
  AERO_CHECK(file_exists(sp), "optimizer state '", sp, "' is missing: cannot resume from ",
             weights_path);
  SafeTensors s = SafeTensors::load(sp);
  const std::string& f = meta(s, "format", sp);
  AERO_CHECK(f == kStateFormat, sp, ": __metadata__.format is '", f, "', expected '",
             kStateFormat, "'");
  opt.load(s, sp);
  state.step = meta_int(s, "step", sp);
  const int64_t wstep = meta_int(load_weights_file(weights_path), "step", weights_path);
  AERO_CHECK(wstep == state.step, sp, " is for step ", state.step, " but ", weights_path,
             " holds step ", wstep);
  state.data.epoch = uint64_t(meta_int(s, "data_epoch", sp));
  state.data.index = uint64_t(meta_int(s, "data_index", sp));
  state.rng = decode_rng(meta(s, "rng", sp), sp);
  state.elapsed_s = meta_double(s, "elapsed_s", sp);
  state.stop_reason = meta(s, "stop_reason", sp);
}

}  // namespace aero::train
