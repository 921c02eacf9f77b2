#include "cuda/gpu_train_ckpt.h"

#include <filesystem>

#include "core/error.h"
#include "core/files.h"
#include "core/safetensors.h"

namespace aero::cuda {

namespace fs = std::filesystem;

std::map<std::string, std::string> gpu_state_metadata(const GpuTrainState& s) {
  train::Metadata md{{"adamw_t", std::to_string(s.adamw_t)}};
  train::put_state_metadata(md, s);
  return md;
}

GpuTrainState gpu_state_from_metadata(const std::map<std::string, std::string>& md,
                                      const std::string& src) {
  GpuTrainState s;
  static_cast<train::StateRecord&>(s) = train::state_from_metadata(md, src);
  s.adamw_t = train::metadata_int(md, "adamw_t", src);
  return s;
}

std::string write_gpu_run_checkpoint(const std::string& run_dir, const GpuLayout& lay,
                                     const std::vector<float>& weights,
                                     const std::vector<float>& m, const std::vector<float>& v,
                                     const model::RunConfig& cfg, const GpuTrainState& state) {
  AERO_CHECK(weights.size() >= lay.size && m.size() >= lay.size && v.size() >= lay.size,
             "write_gpu_run_checkpoint: arenas smaller than the layout");
  const std::string path = train::checkpoint_path(run_dir, state.step);
  make_dirs((fs::path(run_dir) / "ckpt").string());
  SafeTensors s = arena_to_safetensors(lay.params, m, "m.");
  SafeTensors s2 = arena_to_safetensors(lay.params, v, "v.");
  s.tensors.merge(s2.tensors);
  s.metadata = gpu_state_metadata(state);
  s.save(train::state_path_for(path));
  write_weights_file(path, lay.params, weights, train::weights_metadata(cfg, state.step));
  train::write_latest(run_dir, path);
  return path;
}

HostCheckpoint read_gpu_run_checkpoint(const std::string& path_or_run_dir) {
  HostCheckpoint c;
  c.path = train::resolve_checkpoint(path_or_run_dir);
  int64_t wstep = 0;
  c.config = train::config_from_weights_metadata(SafeTensors::load(c.path).metadata, c.path, &wstep);
  c.layout = gpu_param_layout(c.config.model);
  c.weights = read_weights_file(c.path, c.layout);
  const std::string sp = train::state_path_for(c.path);
  AERO_CHECK(file_exists(sp), "optimizer state '", sp, "' is missing: cannot resume from ", c.path);
  SafeTensors st = SafeTensors::load(sp);
  c.state = gpu_state_from_metadata(st.metadata, sp);
  AERO_CHECK(wstep == c.state.step, sp, " is for step ", c.state.step, " but ", c.path,
             " holds step ", wstep);
  c.m.assign(c.layout.size, 0.f);
  c.v.assign(c.layout.size, 0.f);
  arena_from_safetensors(c.layout.params, c.m, "m.", st, sp);
  arena_from_safetensors(c.layout.params, c.v, "v.", st, sp);
  return c;
}

}  // namespace aero::cuda
