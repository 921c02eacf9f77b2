#include "cuda/gpu_train_ckpt.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/files.h"
#include "core/safetensors.h"

namespace aero::cuda {

namespace fs = std::filesystem;

namespace {

constexpr const char* kWeightsFormat = "aero-ckpt-1";  // = aero::train::kCheckpointFormat
constexpr const char* kStateFormat = "aero-state-1";   // = aero::train::kStateFormat

std::string hex64(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "%016" PRIx64, v);
  return b;
}

const std::string& need(const std::map<std::string, std::string>& md, const std::string& key,
                        const std::string& src) {
  auto it = md.find(key);
  AERO_CHECK(it != md.end(), src, ": __metadata__ lacks '", key, "' (not an aero checkpoint?)");
  return it->second;
}

int64_t need_int(const std::map<std::string, std::string>& md, const std::string& key,
                 const std::string& src) {
  const std::string& v = need(md, key, src);
  try {
    size_t used = 0;
    long long x = std::stoll(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  ::aero::fail(src, ": __metadata__ '", key, "' is not an integer: '", v, "'");
}

}  // namespace

std::string gpu_checkpoint_path(const std::string& run_dir, int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "step-%06" PRId64 ".safetensors", step);
  return (fs::path(run_dir) / "ckpt" / name).string();
}

std::string gpu_state_path_for(const std::string& w) {
  const std::string ext = ".safetensors";
  if (w.size() >= ext.size() && w.compare(w.size() - ext.size(), ext.size(), ext) == 0)
    return w.substr(0, w.size() - ext.size()) + ".state.safetensors";
  return w + ".state.safetensors";
}

std::map<std::string, std::string> gpu_weights_metadata(const model::RunConfig& cfg,
                                                        int64_t step) {
  return {{"format", kWeightsFormat},
          {"aero_config", model::to_json(cfg).dump()},
          {"step", std::to_string(step)}};
}

std::map<std::string, std::string> gpu_state_metadata(const GpuTrainState& s) {
  uint64_t spare_bits;
  std::memcpy(&spare_bits, &s.rng.spare, 8);
  char el[40];
  std::snprintf(el, sizeof el, "%.17g", s.elapsed_s);
  return {{"format", kStateFormat},
          {"step", std::to_string(s.step)},
          {"adamw_t", std::to_string(s.adamw_t)},
          {"data_epoch", std::to_string(s.data_epoch)},
          {"data_index", std::to_string(s.data_index)},
          {"rng", hex64(s.rng.s[0]) + "," + hex64(s.rng.s[1]) + "," + hex64(s.rng.s[2]) + "," +
                      hex64(s.rng.s[3]) + "," + hex64(spare_bits) + "," +
                      (s.rng.has_spare ? "1" : "0")},
          {"elapsed_s", el},
          {"stop_reason", s.stop_reason}};
}

GpuTrainState gpu_state_from_metadata(const std::map<std::string, std::string>& md,
                                      const std::string& src) {
  const std::string& f = need(md, "format", src);
  AERO_CHECK(f == kStateFormat, src, ": __metadata__.format is '", f, "', expected '",
             kStateFormat, "'");
  GpuTrainState s;
  s.step = need_int(md, "step", src);
  s.adamw_t = need_int(md, "adamw_t", src);
  s.data_epoch = uint64_t(need_int(md, "data_epoch", src));
  s.data_index = uint64_t(need_int(md, "data_index", src));
  const std::string& r = need(md, "rng", src);
  uint64_t w[5];
  int has = 0;
  AERO_CHECK(std::sscanf(r.c_str(), "%" SCNx64 ",%" SCNx64 ",%" SCNx64 ",%" SCNx64 ",%" SCNx64 ",%d",
                         &w[0], &w[1], &w[2], &w[3], &w[4], &has) == 6,
             src, ": metadata 'rng' is malformed: '", r, "'");
  for (int i = 0; i < 4; ++i) s.rng.s[size_t(i)] = w[i];
  std::memcpy(&s.rng.spare, &w[4], 8);
  s.rng.has_spare = has != 0;
  const std::string& e = need(md, "elapsed_s", src);
  try {
    s.elapsed_s = std::stod(e);
  } catch (const std::exception&) {
    ::aero::fail(src, ": __metadata__ 'elapsed_s' is not a number: '", e, "'");
  }
  s.stop_reason = need(md, "stop_reason", src);
  return s;
}

std::string gpu_resolve_checkpoint(const std::string& p) {
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
  ::aero::fail("'", p, "' is a directory without ckpt/latest: not a run directory with a checkpoint");
}

model::RunConfig gpu_read_checkpoint_config(const std::string& path, int64_t* step) {
  SafeTensors st = SafeTensors::load(path);
  const std::string& f = need(st.metadata, "format", path);
  AERO_CHECK(f == kWeightsFormat, path, ": __metadata__.format is '", f, "', expected '",
             kWeightsFormat, "'");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(need(st.metadata, "aero_config", path));
  } catch (const nlohmann::json::exception& e) {
    ::aero::fail(path, ": __metadata__.aero_config is not valid JSON: ", e.what());
  }
  if (step) *step = need_int(st.metadata, "step", path);
  return model::run_config_from_json(j, path + " (aero_config)");
}

void gpu_write_latest(const std::string& run_dir, const std::string& weights_path) {
  write_file_atomic((fs::path(run_dir) / "ckpt" / "latest").string(),
                    fs::path(weights_path).filename().string() + "\n");
}

std::string write_gpu_run_checkpoint(const std::string& run_dir, const GpuLayout& lay,
                                     const std::vector<float>& weights,
                                     const std::vector<float>& m, const std::vector<float>& v,
                                     const model::RunConfig& cfg, const GpuTrainState& state) {
  AERO_CHECK(weights.size() >= lay.size && m.size() >= lay.size && v.size() >= lay.size,
             "write_gpu_run_checkpoint: arenas smaller than the layout");
  const std::string path = gpu_checkpoint_path(run_dir, state.step);
  make_dirs((fs::path(run_dir) / "ckpt").string());
  SafeTensors s = arena_to_safetensors(lay.params, m, "m.");
  SafeTensors s2 = arena_to_safetensors(lay.params, v, "v.");
  s.tensors.merge(s2.tensors);
  s.metadata = gpu_state_metadata(state);
  s.save(gpu_state_path_for(path));
  write_weights_file(path, lay.params, weights, gpu_weights_metadata(cfg, state.step));
  gpu_write_latest(run_dir, path);
  return path;
}

HostCheckpoint read_gpu_run_checkpoint(const std::string& path_or_run_dir) {
  HostCheckpoint c;
  c.path = gpu_resolve_checkpoint(path_or_run_dir);
  int64_t wstep = 0;
  c.config = gpu_read_checkpoint_config(c.path, &wstep);
  c.layout = gpu_param_layout(c.config.model);
  c.weights = read_weights_file(c.path, c.layout);
  const std::string sp = gpu_state_path_for(c.path);
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
