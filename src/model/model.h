// The model graph: GPT-2 / Pythia decoder with every AERO switch (docs/config.md).
// Parameters, gradients and activations are allocated once at construction for a maximum
// batch B and length T; forward and backward of each layer are plain functions (layers.h).
//
// INTERFACE CONTRACT (trainer, analysis, interop, private inference and the GPU backend use
// exactly this; extend, do not break).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"

namespace aero::model {

// One named parameter (or buffer) in the layout of docs/config.md.
struct Param {
  std::string name;
  std::vector<int64_t> shape;
  size_t size = 0;         // number of elements
  float* data = nullptr;   // into the model's single parameter arena
  float* grad = nullptr;   // nullptr for buffers (e.g. spectral-norm u)
  bool decay = false;      // in AdamW's weight-decay group
  bool trainable = true;   // false for buffers
};

struct ForwardStats {
  double ce = 0;       // mean cross-entropy over the targets given
  double ent_reg = 0;  // L_ent (0 unless the regularizer is on and training)
  double loss = 0;     // ce + lambda * ent_reg
};

class Model {
 public:
  Model(const ModelConfig& cfg, int max_batch, int max_seq);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const;
  void init_weights(uint64_t seed);

  std::vector<Param>& params();
  Param& param(const std::string& name);  // throws aero::Error naming the missing parameter
  size_t num_parameters() const;          // trainable elements

  // tokens, targets: [B*T] int32 (targets may be nullptr: no loss). training=true keeps what
  // backward needs, applies the entropy regularizer and advances spectral-norm power
  // iterations. Returns the loss pieces.
  ForwardStats forward(const int32_t* tokens, const int32_t* targets, int B, int T, bool training);
  // Gradient of the last forward's loss, ACCUMULATED into Param::grad (call zero_grad first).
  void backward();
  void zero_grad();

  // Results of the last forward.
  const float* logits() const;                 // [B, T, V]
  const float* attn_probs(int layer) const;    // [B, H, T, T], causal (upper triangle 0)
  // Mean attention entropy per (layer, head) of the last forward, in nats ([L][H]).
  std::vector<std::vector<double>> head_entropy() const;
  // First non-finite value found in the last forward/backward: "" if none, else a
  // description naming the layer, head and tensor (e.g. "layer 7 head 3: attention logits").
  std::string find_nonfinite() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aero::model
