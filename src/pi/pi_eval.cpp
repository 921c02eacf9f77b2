// Perplexity under --pi-sim (see pi_eval.h).
#include "pi/pi_eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.h"
#include "pi/executors.h"

namespace aero::pi {

namespace {
// Cross-entropy of row t of the logits against `target`, in nats (log-sum-exp in double).
template <class V>
double row_ce(const Mat<V>& lg, int t, int target, double scale) {
  double mx = -1e300;
  for (int v = 0; v < lg.cols; ++v) mx = std::max(mx, double(lg.at(t, v)) * scale);
  double s = 0;
  for (int v = 0; v < lg.cols; ++v) s += std::exp(double(lg.at(t, v)) * scale - mx);
  return mx + std::log(s) - double(lg.at(t, target)) * scale;
}
}  // namespace

PiEvalResult pi_evaluate(const PiModel& m, const text::TokenDataset& ds, int T, int64_t max_chunks,
                         const FxSpec& spec, bool float_ref) {
  AERO_CHECK(T >= 1 && T <= m.cfg.context, "pi eval: sequence length ", T, " outside [1, ", m.cfg.context, "]");
  AERO_CHECK(ds.vocab_size() <= uint32_t(m.cfg.vocab_size), "pi eval: data vocabulary ", ds.vocab_size(),
             " exceeds the model's ", m.cfg.vocab_size);
  auto t0 = std::chrono::steady_clock::now();
  uint64_t n = ds.num_chunks(T);
  if (max_chunks > 0 && uint64_t(max_chunks) < n) n = uint64_t(max_chunks);
  AERO_CHECK(n > 0, "pi eval: the split has no chunk of ", T + 1, " tokens");
  PiEvalResult r;
  FixedExec xe(spec);
  FloatExec fe;
  const double fscale = std::ldexp(1.0, -spec.f);
  double ce_x = 0, ce_f = 0, agree = 0, agree_last = 0;
  std::vector<int32_t> buf(size_t(T) + 1);
  for (uint64_t c = 0; c < n; ++c) {
    ds.chunk(c, T, buf.data());
    std::vector<int32_t> ids(buf.begin(), buf.begin() + T);
    auto lx = full_forward(xe, m, ids, true);
    auto ax = argmax_rows(lx);
    for (int t = 0; t < T; ++t) ce_x += row_ce(lx, t, buf[t + 1], fscale);
    if (float_ref) {
      auto lf = full_forward(fe, m, ids, true);
      auto af = argmax_rows(lf);
      for (int t = 0; t < T; ++t) {
        ce_f += row_ce(lf, t, buf[t + 1], 1.0);
        agree += ax[t] == af[t];
        for (int v = 0; v < lf.cols; ++v)
          r.max_logit_err = std::max(r.max_logit_err, std::abs(double(lx.at(t, v)) * fscale - lf.at(t, v)));
      }
      agree_last += ax[T - 1] == af[T - 1];
    }
  }
  r.chunks = n;
  r.tokens = n * uint64_t(T);
  r.ce_fixed = ce_x / double(r.tokens);
  r.ppl_fixed = std::exp(r.ce_fixed);
  if (float_ref) {
    r.ce_float = ce_f / double(r.tokens);
    r.ppl_float = std::exp(r.ce_float);
    r.agree_all = agree / double(r.tokens);
    r.agree_last = agree_last / double(n);
  }
  r.max_bits = xe.max_bits();
  r.logit_bits = xe.max_bits("attn.logits");
  if (m.cfg.norm == model::Norm::layernorm)
    for (const char* t : {"attn.qkv.acc", "ffn.fc.acc", "ffn.fused.acc"}) r.ln_linear_acc_bits = std::max(r.ln_linear_acc_bits, xe.max_bits(t));
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace aero::pi
