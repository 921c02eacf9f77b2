// Causal multi-head softmax attention with AERO's entropy guidance (arXiv 2410.13060,
// section 4): a per-(head, query position) scale 1/(t sqrt(d_k)) from the learnable softmax
// temperature, and the entropy regularizer of SPEC section 3 computed from the probabilities
// in the forward, its gradient (to the probabilities and to theta) added in the backward.
// Rotary embeddings (RoFormer, Su et al. 2021) in GPT-NeoX's rotate_half layout.
//
// Per (batch row, head) the score, softmax and value products are GEMMs that read q, k, v in
// place from the packed qkv buffer (leading dimension 3C): no copies, one task per head.
#include <algorithm>
#include <cmath>
#include <vector>

#include "model/fast_math.h"
#include "model/layers.h"

namespace aero::model {

namespace {
// Causal block size: score and value products run over row blocks of this many queries, each
// against only the keys up to its last row, so about half of the T x T work above the
// diagonal is skipped for long sequences (at T = 128: 62.5% of the full products).
constexpr int kCausalBlock = 32;
}  // namespace

template <typename T>
void rotary_apply(T* qkv, const T* cos, const T* sin, int B, int Tn, int C, int H, int R,
                  bool inverse) {
  const int D = C / H, half = R / 2;
  const T sgn = inverse ? T(-1) : T(1);
#pragma omp parallel for if(size_t(B) * Tn * C >= size_t(omp_min_work)) schedule(static)
  for (int n = 0; n < B * Tn; n++) {
    const int t = n % Tn;
    const T* cs = cos + size_t(t) * half;
    const T* sn = sin + size_t(t) * half;
    for (int which = 0; which < 2; which++) {  // q, then k
      for (int h = 0; h < H; h++) {
        T* x = qkv + size_t(n) * 3 * C + which * C + h * D;
        for (int f = 0; f < half; f++) {
          T x1 = x[f], x2 = x[f + half], c = cs[f], s = sgn * sn[f];
          x[f] = x1 * c - x2 * s;
          x[f + half] = x2 * c + x1 * s;
        }
      }
    }
  }
}

template <typename T>
void attention_forward(T* out, T* probs, const T* qkv, const T* scale, int scale_ld, int B,
                       int Tn, int C, int H, EntropyRegArgs<T>* ent) {
  const int D = C / H, ld = 3 * C;
  double penalty = 0;
#pragma omp parallel for if(size_t(B) * H * Tn * Tn * D >= size_t(omp_min_work)) reduction(+ : penalty) schedule(static)
  for (int bh = 0; bh < B * H; bh++) {
    const int b = bh / H, h = bh % H;
    const T* Q = qkv + size_t(b) * Tn * ld + h * D;
    const T* K = Q + C;
    const T* V = Q + 2 * C;
    T* P = probs + size_t(bh) * Tn * Tn;
    for (int r0 = 0; r0 < Tn; r0 += kCausalBlock) {
      int r1 = std::min(Tn, r0 + kCausalBlock);
      gemm<T>(false, true, r1 - r0, r1, D, T(1), Q + size_t(r0) * ld, ld, K, ld, T(0), P + size_t(r0) * Tn, Tn);
    }
    const T* sc = scale + size_t(h) * scale_ld;
    for (int i = 0; i < Tn; i++) {
      T* row = P + size_t(i) * Tn;
      const T s = sc[i];
      T m = row[0] * s;
      for (int j = 1; j <= i; j++) m = std::max(m, row[j] * s);
      T sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int j = 0; j <= i; j++) {
        T e = vexp(row[j] * s - m);
        row[j] = e;
        sum += e;
      }
      const T inv = T(1) / sum;
      for (int j = 0; j <= i; j++) row[j] *= inv;
      for (int j = i + 1; j < Tn; j++) row[j] = 0;
      if (ent) {
        // Row entropy over the causal row; SPEC section 3 uses ln(a + 1e-9).
        T e = 0;
        for (int j = 0; j <= i; j++) e -= row[j] * std::log(row[j] + T(1e-9));
        double delta = double(e) - double(ent->theta[h]) * ent->e_max;
        T coef = 0;
        if (std::fabs(delta) > ent->tol) {
          penalty += delta * delta;
          coef = T(ent->weight * 2 * delta);
        }
        ent->coef[size_t(bh) * Tn + i] = coef;
      }
    }
    T* Y = out + size_t(b) * Tn * C + h * D;
    for (int r0 = 0; r0 < Tn; r0 += kCausalBlock) {
      int r1 = std::min(Tn, r0 + kCausalBlock);
      gemm<T>(false, false, r1 - r0, D, r1, T(1), P + size_t(r0) * Tn, Tn, V, ld, T(0), Y + size_t(r0) * C, C);
    }
  }
  if (ent) ent->penalty = penalty;
}

template <typename T>
void attention_backward(T* dqkv, T* dscale, T* dtheta, const T* dout, const T* qkv,
                        const T* probs, const T* scale, int scale_ld, int B, int Tn, int C,
                        int H, const EntropyRegArgs<T>* ent) {
  const int D = C / H, ld = 3 * C;
#pragma omp parallel if(size_t(B) * H * Tn * Tn * D >= size_t(omp_min_work))
  {
    // Per-thread scratch: dP (turned into dS in place) and, for the temperature gradient,
    // the raw scores q.k recomputed by one GEMM rather than stored for every layer.
    static thread_local std::vector<T> dP, R;
    dP.resize(size_t(Tn) * Tn);
    if (dscale) R.resize(size_t(Tn) * Tn);
#pragma omp for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
      const int b = bh / H, h = bh % H;
      const T* Q = qkv + size_t(b) * Tn * ld + h * D;
      const T* K = Q + C;
      const T* V = Q + 2 * C;
      T* dQ = dqkv + size_t(b) * Tn * ld + h * D;
      T* dK = dQ + C;
      T* dV = dQ + 2 * C;
      const T* P = probs + size_t(bh) * Tn * Tn;
      const T* dY = dout + size_t(b) * Tn * C + h * D;
      const T* sc = scale + size_t(h) * scale_ld;
      for (int r0 = 0; r0 < Tn; r0 += kCausalBlock) {
        int r1 = std::min(Tn, r0 + kCausalBlock);
        gemm<T>(false, true, r1 - r0, r1, D, T(1), dY + size_t(r0) * C, C, V, ld, T(0),
                dP.data() + size_t(r0) * Tn, Tn);
        if (dscale)
          gemm<T>(false, true, r1 - r0, r1, D, T(1), Q + size_t(r0) * ld, ld, K, ld, T(0),
                  R.data() + size_t(r0) * Tn, Tn);
      }
      for (int i = 0; i < Tn; i++) {
        const T* p = P + size_t(i) * Tn;
        T* d = dP.data() + size_t(i) * Tn;
        if (ent) {
          const T c = ent->coef[size_t(bh) * Tn + i];
          if (c != 0) {
            // dE/dp_j = -(ln(p_j + eps) + p_j / (p_j + eps))
            for (int j = 0; j <= i; j++) {
              T pe = p[j] + T(1e-9);
              d[j] -= c * (std::log(pe) + p[j] / pe);
            }
          }
        }
        T dot = 0;
        for (int j = 0; j <= i; j++) dot += p[j] * d[j];
        for (int j = 0; j <= i; j++) d[j] = p[j] * (d[j] - dot);
        for (int j = i + 1; j < Tn; j++) d[j] = 0;
        if (dscale) {
          const T* r = R.data() + size_t(i) * Tn;
          T acc = 0;
          for (int j = 0; j <= i; j++) acc += d[j] * r[j];
          dscale[size_t(bh) * Tn + i] = acc;
        }
        const T s = sc[i];
        for (int j = 0; j <= i; j++) d[j] *= s;
      }
      // dQ = dS K by row blocks (keys up to the block's last row); dK = dS^T Q and
      // dV = P^T dY by column blocks (queries from the block's first column on).
      const T* dS = dP.data();
      for (int r0 = 0; r0 < Tn; r0 += kCausalBlock) {
        int r1 = std::min(Tn, r0 + kCausalBlock);
        gemm<T>(false, false, r1 - r0, D, r1, T(1), dS + size_t(r0) * Tn, Tn, K, ld, T(0),
                dQ + size_t(r0) * ld, ld);
        gemm<T>(true, false, r1 - r0, D, Tn - r0, T(1), dS + size_t(r0) * Tn + r0, Tn,
                Q + size_t(r0) * ld, ld, T(0), dK + size_t(r0) * ld, ld);
        gemm<T>(true, false, r1 - r0, D, Tn - r0, T(1), P + size_t(r0) * Tn + r0, Tn,
                dY + size_t(r0) * C, C, T(0), dV + size_t(r0) * ld, ld);
      }
    }
  }
  if (ent && dtheta) {
    // delta = E - theta e_max: d loss / d theta = -e_max * sum of the row coefficients.
    for (int h = 0; h < H; h++) {
      double acc = 0;
      for (int b = 0; b < B; b++)
        for (int i = 0; i < Tn; i++) acc += ent->coef[(size_t(b) * H + h) * Tn + i];
      dtheta[h] += T(-ent->e_max * acc);
    }
  }
}

#define AERO_INSTANTIATE(T)                                                                    \
  template void rotary_apply<T>(T*, const T*, const T*, int, int, int, int, int, bool);        \
  template void attention_forward<T>(T*, T*, const T*, const T*, int, int, int, int, int,      \
                                     EntropyRegArgs<T>*);                                      \
  template void attention_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, int, \
                                      int, int, int, int, const EntropyRegArgs<T>*);
AERO_INSTANTIATE(float)
AERO_INSTANTIATE(double)

}  // namespace aero::model
