// The checkpoint format itself (docs/config.md "Run directory and logs"): file names, the
// `latest` pointer and the __metadata__ records, shared by the CPU trainer (checkpoint.h) and
// the GPU trainer (src/cuda/gpu_train_ckpt.h). Needs only core files and the run config, so
// the standalone CUDA build compiles it too.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "core/rng.h"
#include "model/config.h"

namespace aero::train {

inline constexpr const char* kCheckpointFormat = "aero-ckpt-1";
inline constexpr const char* kStateFormat = "aero-state-1";

using Metadata = std::map<std::string, std::string>;

// The trainer state a resumed run needs besides weights and optimizer moments, as stored in
// the .state file's __metadata__ (AdamW's own step count, adamw_t, is the optimizer's key).
struct StateRecord {
  int64_t step = 0;  // optimizer steps completed
  uint64_t data_epoch = 0, data_index = 0;
  Rng::State rng{};
  double elapsed_s = 0;
  std::string stop_reason;  // "" normally; the NaN guard's finding when it stopped the run
};

// RUN_DIR/ckpt/step-NNNNNN.safetensors
std::string checkpoint_path(const std::string& run_dir, int64_t step);
// X.safetensors -> X.state.safetensors
std::string state_path_for(const std::string& weights_path);
// A weights file, a run directory (its ckpt/latest) or a ckpt/ directory -> the weights file.
std::string resolve_checkpoint(const std::string& path_or_run_dir);
// A fresh run may start in run_dir only if it holds no run yet (no ckpt/latest) or overwrite is
// set; otherwise the error says to --resume it or pick another --out.
void check_fresh_run_dir(const std::string& run_dir, bool overwrite);
// RUN_DIR/ckpt/latest <- the file name of weights_path (atomic; written last).
void write_latest(const std::string& run_dir, const std::string& weights_path);

// Metadata values with errors naming the file (src) and key.
const std::string& metadata_value(const Metadata& md, const std::string& key, const std::string& src);
int64_t metadata_int(const Metadata& md, const std::string& key, const std::string& src);
double metadata_double(const Metadata& md, const std::string& key, const std::string& src);

// Weights file: format, the full run config, step.
Metadata weights_metadata(const model::RunConfig& cfg, int64_t step);
// Checks the format and parses the stored config; *step receives the step when given.
model::RunConfig config_from_weights_metadata(const Metadata& md, const std::string& src,
                                              int64_t* step = nullptr);
// State file: adds format, step, data position, RNG, elapsed time and stop reason to md.
void put_state_metadata(Metadata& md, const StateRecord& s);
// Checks the format and reads the record back.
StateRecord state_from_metadata(const Metadata& md, const std::string& src);

}  // namespace aero::train
