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

// One named parameter (or buffer) in the layout of docs/config.md. The model is a template on
// its scalar type (float for training; double for the finite-difference gradient checks);
// Param and Model are the float versions everything else uses.
template <typename T>
struct BasicParam {
  std::string name;
  std::vector<int64_t> shape;
  size_t size = 0;     // number of elements
  T* data = nullptr;   // into the model's single parameter arena
  T* grad = nullptr;   // nullptr for buffers (e.g. spectral-norm u)
  bool decay = false;  // in AdamW's weight-decay group
  bool trainable = true;  // false for buffers
};
using Param = BasicParam<float>;

struct ForwardStats {
  double ce = 0;       // mean cross-entropy over the targets given
  double ent_reg = 0;  // L_ent (0 unless the regularizer is on and training)
  double loss = 0;     // ce + lambda * ent_reg
};

template <typename T>
class BasicModel {
 public:
  using Param = BasicParam<T>;
  BasicModel(const ModelConfig& cfg, int max_batch, int max_seq);
  ~BasicModel();
  BasicModel(const BasicModel&) = delete;
  BasicModel& operator=(const BasicModel&) = delete;

  const ModelConfig& config() const;
  void init_weights(uint64_t seed);

  std::vector<Param>& params();
  Param& param(const std::string& name);  // throws aero::Error naming the missing parameter
  size_t num_parameters() const;          // trainable elements

  // tokens, targets: [B*T] int32 (targets may be nullptr: no loss). training=true keeps what
  // backward needs, applies the entropy regularizer and advances spectral-norm power
  // iterations. Returns the loss pieces.
  ForwardStats forward(const int32_t* tokens, const int32_t* targets, int B, int Tn, bool training);
  // Gradient of the last forward's loss, ACCUMULATED into Param::grad (call zero_grad first).
  void backward();
  void zero_grad();

  // Results of the last forward.
  // logits() is valid until backward(), which turns the buffer into the logits' gradient.
  const T* logits() const;                 // [B, T, V]
  const T* attn_probs(int layer) const;    // [B, H, T, T], causal (upper triangle 0)
  // Mean attention entropy per (layer, head) of the last forward, in nats ([L][H]).
  std::vector<std::vector<double>> head_entropy() const;
  // First non-finite value found in the last forward/backward: "" if none, else a
  // description naming the layer, head and tensor (e.g. "layer 7 head 3: attention logits").
  std::string find_nonfinite() const;

  // ---- extensions (beyond the original contract) ----
  int max_batch() const;
  int max_seq() const;
  int last_batch() const;  // B and T of the last forward
  int last_seq() const;
  const BasicParam<T>* find_param(const std::string& name) const;  // nullptr if absent
  // Tests: keep spectral-norm u fixed in training forwards (sigma = ||W^T u||, whose exact
  // gradient is the one backward uses), so finite differences see the same function.
  void set_spectral_norm_frozen(bool frozen);
  // The weight matrix a linear uses after weight / spectral normalization, [out, in], for
  // the private-inference and interop exporters (name without ".weight", e.g.
  // "blocks.0.attn.qkv"). Uses the current u (no power iteration).
  std::vector<T> effective_weight(const std::string& linear) const;
  // The softmax temperature t[h, i] of a layer ([H, context]; all 1 when temperature=false).
  std::vector<T> temperature(int layer) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

using Model = BasicModel<float>;
extern template class BasicModel<float>;
extern template class BasicModel<double>;

}  // namespace aero::model
