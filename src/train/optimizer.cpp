#include "train/optimizer.h"

#include <cmath>
#include <cstring>

#include "core/error.h"

namespace aero::train {

AdamW::AdamW(std::vector<model::Param>& params, const AdamWConfig& cfg)
    : params_(params), cfg_(cfg), m_(params.size()), v_(params.size()) {
  AERO_CHECK(cfg.beta1 >= 0 && cfg.beta1 < 1, "train.beta1 must be in [0, 1), got ", cfg.beta1);
  AERO_CHECK(cfg.beta2 >= 0 && cfg.beta2 < 1, "train.beta2 must be in [0, 1), got ", cfg.beta2);
  AERO_CHECK(cfg.eps > 0, "train.eps must be > 0, got ", cfg.eps);
  AERO_CHECK(cfg.weight_decay >= 0, "train.weight_decay must be >= 0, got ", cfg.weight_decay);
  for (size_t i = 0; i < params.size(); ++i) {
    if (!params[i].trainable || !params[i].grad) continue;
    m_[i].assign(params[i].size, 0.0f);
    v_[i].assign(params[i].size, 0.0f);
  }
}

void AdamW::step(double lr) {
  ++t_;
  const float b1 = float(cfg_.beta1), b2 = float(cfg_.beta2);
  // Bias corrections in double: 1 - b2^t is tiny early on and loses digits in float.
  const double bc1 = 1.0 - std::pow(cfg_.beta1, double(t_));
  const double bc2 = 1.0 - std::pow(cfg_.beta2, double(t_));
  const float step_size = float(lr / bc1);
  const float inv_sqrt_bc2 = float(1.0 / std::sqrt(bc2));
  const float eps = float(cfg_.eps);
  for (size_t i = 0; i < params_.size(); ++i) {
    model::Param& p = params_[i];
    if (m_[i].empty()) continue;
    const float decay = p.decay ? float(1.0 - lr * cfg_.weight_decay) : 1.0f;
    float* w = p.data;
    const float* g = p.grad;
    float* m = m_[i].data();
    float* v = v_[i].data();
    const int64_t n = int64_t(p.size);
    // Elementwise and order-independent: any thread split gives identical bits.
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t j = 0; j < n; ++j) {
      const float gj = g[j];
      const float mj = b1 * m[j] + (1.0f - b1) * gj;
      const float vj = b2 * v[j] + (1.0f - b2) * gj * gj;
      m[j] = mj;
      v[j] = vj;
      w[j] = w[j] * decay - step_size * mj / (std::sqrt(vj) * inv_sqrt_bc2 + eps);
    }
  }
}

void AdamW::save(SafeTensors& st) const {
  for (size_t i = 0; i < params_.size(); ++i) {
    if (m_[i].empty()) continue;
    const auto& p = params_[i];
    st.tensors["m." + p.name] = StTensor::from_f32(m_[i].data(), p.shape);
    st.tensors["v." + p.name] = StTensor::from_f32(v_[i].data(), p.shape);
  }
  st.metadata["adamw_t"] = std::to_string(t_);
}

void AdamW::load(const SafeTensors& st, const std::string& src) {
  auto it = st.metadata.find("adamw_t");
  AERO_CHECK(it != st.metadata.end(), src, ": optimizer state lacks metadata 'adamw_t'");
  try {
    t_ = std::stoll(it->second);
  } catch (const std::exception&) {
    fail(src, ": metadata 'adamw_t' is not an integer: '", it->second, "'");
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    if (m_[i].empty()) continue;
    const auto& p = params_[i];
    for (const char* which : {"m.", "v."}) {
      const std::string key = which + p.name;
      AERO_CHECK(st.has(key), src, ": optimizer state lacks tensor '", key, "'");
      const StTensor& t = st.at(key);
      AERO_CHECK(t.dtype == DType::F32 && size_t(t.numel()) == p.size, src, ": tensor '", key,
                 "' must be F32 with ", p.size, " elements, has ", dtype_name(t.dtype), " with ",
                 t.numel());
      auto& dst = which[0] == 'm' ? m_[i] : v_[i];
      std::memcpy(dst.data(), t.bytes.data(), p.size * sizeof(float));
    }
  }
}

}  // namespace aero::train
