// Checkpoints (docs/config.md "Run directory and logs"), the public way to save and load a
// trained model for every other part of aero (analysis, interop, private inference).
//
//   RUN_DIR/ckpt/step-NNNNNN.safetensors        weights: every Param (buffers included) as F32
//                                               in PyTorch layout; __metadata__: format
//                                               "aero-ckpt-1", aero_config (full JSON), step
//   RUN_DIR/ckpt/step-NNNNNN.state.safetensors  AdamW moments m.NAME / v.NAME; __metadata__:
//                                               format "aero-state-1", step, adamw_t, data
//                                               position, RNG state, elapsed_s, stop_reason
//   RUN_DIR/ckpt/latest                         one line: the newest weights file name
// The weights file loads in PyTorch with safetensors.torch.load_file. Every file is written
// atomically (temp + rename), the state first and `latest` last, so a crash leaves the
// previous checkpoint usable. Loading checks format, config, every tensor's presence, dtype
// and shape, and refuses a truncated or corrupt file with a message naming it.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/rng.h"
#include "model/config.h"
#include "model/model.h"
#include "train/batcher.h"
#include "train/checkpoint_format.h"

namespace aero::train {

class AdamW;

// What a resumed run needs besides weights and optimizer moments.
struct TrainerState {
  int64_t step = 0;  // optimizer steps completed
  ChunkBatcher::Position data;
  Rng::State rng{};
  double elapsed_s = 0;     // training wall time so far
  std::string stop_reason;  // "" normally; the NaN guard's finding when it stopped the run
};

// Writes weights (and the state file when opt and state are given) to weights_path.
void save_checkpoint(const std::string& weights_path, model::Model& m,
                     const model::RunConfig& cfg, int64_t step, const AdamW* opt = nullptr,
                     const TrainerState* state = nullptr);
// Writes RUN_DIR/ckpt/step-NNNNNN(.state).safetensors and points RUN_DIR/ckpt/latest at it.
// Returns the weights path.
std::string save_run_checkpoint(const std::string& run_dir, model::Model& m,
                                const model::RunConfig& cfg, const AdamW& opt,
                                const TrainerState& state);


// Reads only the run configuration stored in a checkpoint.
model::RunConfig read_checkpoint_config(const std::string& path_or_run_dir);

struct LoadedModel {
  std::unique_ptr<model::Model> model;
  model::RunConfig config;
  int64_t step = 0;
  std::string path;  // the weights file actually read
};
// Builds the model of the stored config for up to max_batch sequences of max_seq tokens
// (max_seq <= 0: the model's context) and fills every parameter and buffer.
LoadedModel load_model(const std::string& path_or_run_dir, int max_batch = 1, int max_seq = 0);

// Copies the tensors of a weights file into an existing model (names and shapes must match
// exactly; missing or extra tensors are errors naming them).
void load_weights(const std::string& weights_path, model::Model& m);
// Restores optimizer moments and trainer state from the .state file beside weights_path.
void load_trainer_state(const std::string& weights_path, AdamW& opt, TrainerState& state);

}  // namespace aero::train
