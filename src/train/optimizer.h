// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019) over the
// model's named parameters, in PyTorch's formulation (torch.optim.AdamW):
//   p <- p - lr * wd * p                     (decayed group only, before the moment update)
//   m <- b1 m + (1-b1) g ;  v <- b2 v + (1-b2) g^2
//   p <- p - (lr / (1-b1^t)) * m / (sqrt(v) / sqrt(1-b2^t) + eps)
// Two parameter groups, chosen by Param::decay (docs/config.md: matrices and embeddings decay;
// biases, gains, temperatures, thresholds, alpha/beta, slopes, weight_g do not). Buffers
// (Param::trainable == false, e.g. spectral-norm u) are never touched.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "model/model.h"

namespace aero::train {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.1;
};

class AdamW {
 public:
  // Keeps a reference to params: the list must outlive the optimizer and not be resized.
  AdamW(std::vector<model::Param>& params, const AdamWConfig& cfg);

  // One update with learning rate lr from the gradients currently in Param::grad.
  void step(double lr);
  int64_t steps_taken() const { return t_; }
  const AdamWConfig& config() const { return cfg_; }

  // Moments as "m.NAME" / "v.NAME" tensors (float32, the parameter's shape) and the step
  // count in metadata "adamw_t"; load() checks that every moment is present with the right
  // size and names the offending tensor otherwise.
  void save(SafeTensors& st) const;
  void load(const SafeTensors& st, const std::string& source_name);

  const std::vector<float>& first_moment(size_t i) const { return m_[i]; }
  const std::vector<float>& second_moment(size_t i) const { return v_[i]; }

 private:
  std::vector<model::Param>& params_;
  AdamWConfig cfg_;
  std::vector<std::vector<float>> m_, v_;  // empty for buffers
  int64_t t_ = 0;
};

}  // namespace aero::train
