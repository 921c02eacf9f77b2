#include "train/checkpoint.h"

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

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

SafeTensors load_weights_file(const std::string& path) {
  SafeTensors st = SafeTensors::load(path);  // validates structure, names the tensor
  const std::string& f = metadata_value(st.metadata, "format", path);
  AERO_CHECK(f == kCheckpointFormat, path, ": __metadata__.format is '", f, "', expected '",
             kCheckpointFormat, "'");
  return st;
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
    put_state_metadata(s.metadata, {state->step, state->data.epoch, state->data.index, state->rng,
                                    state->elapsed_s, state->stop_reason});
    s.save(state_path_for(weights_path));
  }
  SafeTensors w;
  for (auto& p : m.params()) w.tensors[p.name] = StTensor::from_f32(p.data, p.shape);
  w.metadata = weights_metadata(cfg, step);
  w.save(weights_path);
}

std::string save_run_checkpoint(const std::string& run_dir, model::Model& m,
                                const model::RunConfig& cfg, const AdamW& opt,
                                const TrainerState& state) {
  const std::string path = checkpoint_path(run_dir, state.step);
  save_checkpoint(path, m, cfg, state.step, &opt, &state);
  write_latest(run_dir, path);
  return path;
}

model::RunConfig read_checkpoint_config(const std::string& path_or_run_dir) {
  const std::string path = resolve_checkpoint(path_or_run_dir);
  return config_from_weights_metadata(SafeTensors::load_metadata(path), path);  // header only
}

LoadedModel load_model(const std::string& path_or_run_dir, int max_batch, int max_seq) {
  LoadedModel out;
  out.path = resolve_checkpoint(path_or_run_dir);
  SafeTensors st = load_weights_file(out.path);
  out.config = config_from_weights_metadata(st.metadata, out.path, &out.step);
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
  const StateRecord r = state_from_metadata(s.metadata, sp);
  opt.load(s, sp);
  int64_t wstep = 0;
  config_from_weights_metadata(load_weights_file(weights_path).metadata, weights_path, &wstep);
  AERO_CHECK(wstep == r.step, sp, " is for step ", r.step, " but ", weights_path,
             " holds step ", wstep);
  state.step = r.step;
  state.data.epoch = r.data_epoch;
  state.data.index = r.data_index;
  state.rng = r.rng;
  state.elapsed_s = r.elapsed_s;
  state.stop_reason = r.stop_reason;
}

}  // namespace aero::train
