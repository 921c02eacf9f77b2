#include "train/grad_clip.h"

#include <cmath>
#include <algorithm>
#include <cstdint>

namespace aero::train {

double global_grad_norm(const std::vector<model::Param>& params) {
  double total = 0.0;
  for (const auto& p : params) {
    if (!p.trainable || !p.grad) continue;
    const float* g = p.grad;
    const int64_t n = int64_t(p.size);
    // Fixed blocks summed in a fixed order (not an OpenMP reduction, whose combining order
    // varies between runs): the norm, and so the clipped update, is bit-reproducible.
    constexpr int64_t kBlock = 16384;
    const int64_t nb = (n + kBlock - 1) / kBlock;
    std::vector<double> part(size_t(nb), 0.0);
#pragma omp parallel for schedule(static) if (nb > 4)
    for (int64_t b = 0; b < nb; ++b) {
      double s = 0.0;
      const int64_t e = std::min(n, (b + 1) * kBlock);
      for (int64_t j = b * kBlock; j < e; ++j) s += double(g[j]) * double(g[j]);
      part[size_t(b)] = s;
    }
    for (double s : part) total += s;
  }
  return std::sqrt(total);
}

void scale_grads(std::vector<model::Param>& params, float s) {
  for (auto& p : params) {
    if (!p.trainable || !p.grad) continue;
    float* g = p.grad;
    const int64_t n = int64_t(p.size);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t j = 0; j < n; ++j) g[j] *= s;
  }
}

double clip_grad_norm(std::vector<model::Param>& params, double max_norm) {
  const double norm = global_grad_norm(params);
  if (max_norm > 0 && std::isfinite(norm) && norm > max_norm)
    scale_grads(params, float(max_norm / (norm + 1e-6)));
  return norm;
}

}  // namespace aero::train
