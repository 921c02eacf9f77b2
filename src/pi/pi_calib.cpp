// Clip constants of the clipped softmax from training data (see pi_calib.h).
#include "pi/pi_calib.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "pi/executors.h"

namespace aero::pi {

namespace {
constexpr double kStep = 0.25, kMaxClip = 48;
constexpr int kCandidates = int(kMaxClip / kStep) + 1;
double candidate(int k) { return k * kStep; }

// The float executor, scoring every attention row it normalizes: tv[(l H + h) K + k] sums the
// total-variation distance between the row's softmax and the clipped fixed-point softmax at
// candidate k.
struct Scorer : FloatExec {
  const PiModel* m = nullptr;
  double out_scale = 0;  // 2^clip_out_frac
  double def_clip = 8;
  std::vector<double> tv, tv_def, max_logit;
  uint64_t rows = 0;

  T attn_softmax_v(const T& z, const T& qkv, const PiBlock& b, int H) {
    const size_t l = size_t(&b - m->blocks.data());
    const int Tn = qkv.rows;
    for (int h = 0; h < H; ++h) {
      double* acc = &tv[(l * H + h) * kCandidates];
      double& acc_def = tv_def[l * H + h];
      double& mx_all = max_logit[l * H + h];
#pragma omp parallel
      {
        const size_t tn = size_t(Tn);
        std::vector<double> loc(kCandidates, 0.0), q(tn), p(tn), e(tn);
        double loc_def = 0, loc_mx = -1e300;
        // Distance between the row's float softmax p and the clipped fixed-point one at C.
        auto dist = [&](const double* zr, int n, double m, double C) {
          const double g = std::exp(m - C) * out_scale;
          double s = 0;
          for (int j = 0; j < n; ++j) s += (e[j] = zr[j] >= C ? out_scale : std::nearbyint(q[j] * g));
          if (s <= 0) return 1.0;  // the row underflows
          double d = 0;
          for (int j = 0; j < n; ++j) d += std::abs(p[j] - e[j] / s);
          return 0.5 * d;
        };
#pragma omp for schedule(dynamic)
        for (int i = 0; i < Tn; ++i) {
          const double* zr = z.row(h * Tn + i);
          const int n = i + 1;
          double mx = zr[0], sq = 0;
          for (int j = 1; j < n; ++j) mx = std::max(mx, zr[j]);
          for (int j = 0; j < n; ++j) sq += (q[j] = std::exp(zr[j] - mx));
          for (int j = 0; j < n; ++j) p[j] = q[j] / sq;
          for (int k = 0; k < kCandidates; ++k) loc[k] += dist(zr, n, mx, candidate(k));
          loc_def += dist(zr, n, mx, def_clip);
          loc_mx = std::max(loc_mx, mx);
        }
#pragma omp critical
        {
          for (int k = 0; k < kCandidates; ++k) acc[k] += loc[k];
          acc_def += loc_def;
          mx_all = std::max(mx_all, loc_mx);
        }
      }
    }
    rows += uint64_t(H) * Tn;
    return FloatExec::attn_softmax_v(z, qkv, b, H);
  }
};
}  // namespace

ClipCalibration calibrate_softmax_clip(const PiModel& m, const text::TokenDataset& ds, int T, int64_t max_chunks,
                                       const FxSpec& spec) {
  AERO_CHECK(T >= 1 && T <= m.cfg.context, "pi calibrate: sequence length ", T, " outside [1, ", m.cfg.context, "]");
  uint64_t n = ds.num_chunks(T);
  if (max_chunks > 0 && uint64_t(max_chunks) < n) n = uint64_t(max_chunks);
  AERO_CHECK(n > 0, "pi calibrate: the split has no chunk of ", T + 1, " tokens");
  const int L = m.cfg.n_layer, H = m.cfg.n_head;
  Scorer sc;
  sc.m = &m;
  sc.out_scale = std::ldexp(1.0, spec.clip_out_frac);
  sc.def_clip = spec.clip_hi;
  sc.tv.assign(size_t(L) * H * kCandidates, 0.0);
  sc.tv_def.assign(size_t(L) * H, 0.0);
  sc.max_logit.assign(size_t(L) * H, -1e300);
  std::vector<int32_t> buf(size_t(T) + 1);
  for (uint64_t c = 0; c < n; ++c) {
    ds.chunk(c, T, buf.data());
    full_forward(sc, m, std::vector<int32_t>(buf.begin(), buf.begin() + T), false);
  }
  ClipCalibration r;
  r.chunks = n;
  r.rows = sc.rows / uint64_t(L * H);  // attention rows per head
  const double per_head = double(r.rows);
  for (int l = 0; l < L; ++l) {
    r.clip.emplace_back(), r.tv.emplace_back(), r.tv_default.emplace_back(), r.max_logit.emplace_back();
    for (int h = 0; h < H; ++h) {
      const double* acc = &sc.tv[(size_t(l) * H + h) * kCandidates];
      const int best = int(std::min_element(acc, acc + kCandidates) - acc);
      r.clip.back().push_back(candidate(best));
      r.tv.back().push_back(acc[best] / per_head);
      r.tv_default.back().push_back(sc.tv_def[size_t(l) * H + h] / per_head);
      r.max_logit.back().push_back(sc.max_logit[size_t(l) * H + h]);
    }
  }
  return r;
}

nlohmann::json ClipCalibration::to_json(const std::string& split) const {
  return {{"clip", clip},
          {"objective", "per head, the clip constant on [0, 48] (steps of 1/4) minimizing the mean total-variation "
                        "distance between the float and the clipped fixed-point softmax of each attention row"},
          {"split", split}, {"chunks", chunks}, {"rows_per_head", rows}, {"mean_tv", tv},
          {"mean_tv_at_default", tv_default}, {"max_logit", max_logit}};
}

}  // namespace aero::pi
