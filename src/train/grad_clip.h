// Global-norm gradient clipping (Pascanu et al., "On the difficulty of training recurrent
// neural networks", ICML 2013), as torch.nn.utils.clip_grad_norm_: the L2 norm over every
// trainable gradient together; if it exceeds max_norm, all gradients are scaled by
// max_norm / (norm + 1e-6).
#pragma once
#include <vector>

#include "model/model.h"

namespace aero::train {

// L2 norm of all trainable gradients, accumulated in double (NaN/Inf propagate).
double global_grad_norm(const std::vector<model::Param>& params);
// Scales every trainable gradient by s.
void scale_grads(std::vector<model::Param>& params, float s);
// Clips to max_norm (<= 0: no clipping) and returns the norm before clipping.
double clip_grad_norm(std::vector<model::Param>& params, double max_norm);

}  // namespace aero::train
