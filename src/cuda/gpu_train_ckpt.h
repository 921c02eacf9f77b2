// Run-directory checkpoints of the GPU trainer (aero-gpu), in exactly the CPU trainer's format
// (src/train/checkpoint.h), so that `aero eval RUN_DIR` / `aero train --resume RUN_DIR` read
// what aero-gpu writes and `aero-gpu train --resume RUN_DIR` continues a CPU run:
//   RUN_DIR/ckpt/step-NNNNNN.safetensors        weights F32, __metadata__ format "aero-ckpt-1",
//                                               aero_config (full JSON RunConfig), step
//   RUN_DIR/ckpt/step-NNNNNN.state.safetensors  m.NAME / v.NAME; __metadata__ format
//                                               "aero-state-1", step, adamw_t, data_epoch,
//                                               data_index, rng, elapsed_s, stop_reason
//   RUN_DIR/ckpt/latest                         the newest weights file name
// State first, weights second, `latest` last, each atomically (temp + rename).
// Pure host code (no CUDA): the CPU build tests it against aero::train::load_model.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/rng.h"
#include "cuda/gpu_model.h"
#include "model/config.h"
#include "train/checkpoint_format.h"

namespace aero::cuda {

// What a resumed GPU run needs besides weights and moments: the CPU trainer's state record
// plus the AdamW step count that the CPU keeps inside its optimizer. File names, `latest`,
// resolving a run directory and the weights metadata are aero::train's
// (train/checkpoint_format.h).
struct GpuTrainState : train::StateRecord {
  int64_t adamw_t = 0;  // AdamW bias-correction counter (== step for a normal run)
};

// The .state file's __metadata__ (train::put_state_metadata plus adamw_t), and back.
std::map<std::string, std::string> gpu_state_metadata(const GpuTrainState& s);
GpuTrainState gpu_state_from_metadata(const std::map<std::string, std::string>& md,
                                      const std::string& src);

// Host arenas (GpuLayout offsets) -> a complete run checkpoint; returns the weights path.
std::string write_gpu_run_checkpoint(const std::string& run_dir, const GpuLayout& lay,
                                     const std::vector<float>& weights,
                                     const std::vector<float>& m, const std::vector<float>& v,
                                     const model::RunConfig& cfg, const GpuTrainState& state);

struct HostCheckpoint {
  std::string path;  // weights file read
  model::RunConfig config;
  GpuTrainState state;
  GpuLayout layout;  // gpu_param_layout(config.model)
  std::vector<float> weights, m, v;
};
// Reads weights, moments and state of a run checkpoint (CPU- or GPU-written) into arenas.
HostCheckpoint read_gpu_run_checkpoint(const std::string& path_or_run_dir);

}  // namespace aero::cuda
