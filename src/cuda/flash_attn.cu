// Fused causal attention with learnable temperature, row entropy and the entropy regularizer's
// gradient, for head dimension 64 (kernels.h, "fused causal attention").
//
// The algorithm is FlashAttention-2 (T. Dao, "FlashAttention-2: Faster Attention with Better
// Parallelism and Work Partitioning", 2023): each block owns a tile of query rows and streams
// the key/value tiles through shared memory, keeping the running row maximum and sum of the
// softmax (online softmax) so that the [T, T] score matrix never reaches device memory; the
// backward recomputes the probabilities from the saved log-sum-exp. Written for this project:
// one kernel for the forward, two for the backward (dQ by query tiles, dK/dV by key tiles, so
// that no atomics are needed and results are bit-reproducible), mma.sync m16n8k16 bf16 tensor
// core products with fp32 accumulation, 4 warps of 16 rows each, 64 x 64 tiles, any T >= 1.
//
// Per row i (logits z_j = S_ij * scale / t_i, a = softmax over j <= i):
//   forward:  O_i = sum_j a_j V_j, lse_i, E_i = -sum_j a_j ln a_j = ln l - sum_j a_j (z_j - m)
//             (the running sum of e^(z_j - m) (z_j - m) is rescaled with the maximum m like l).
//   backward: with g_j = dP_j - gE_i (ln a_j + 1) (dP = dO V^T; the regularizer's dE/da) the
//             explicit path's dz_j = a_j (g_j - sum_k a_k g_k) becomes
//             dz_j = a_j (dP_j - D_i - gE_i (ln a_j + E_i)),  D_i = dO_i . O_i,
//             dS_ij = dz_j scale / t_i, and the temperature gradient -(1/t) sum_j dz_j ln a_j
//             (sum_j dz_j z_j with sum_j dz_j = 0). ln a_j = z_j - lse_i.
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "cuda/kernel_util.cuh"
#include "cuda/kernels.h"

namespace aero::cuda {
namespace {

constexpr int kD = 64;       // head dimension
constexpr int kTile = 64;    // query rows per block (16 per warp) and keys per tile
constexpr int kPitch = 72;   // shared row pitch (bf16): 144 B, rows 16-byte aligned, and the
                             // 32-bit fragment loads of 8 rows x 4 columns hit 32 banks
constexpr int kThreads = 128;
constexpr float kLn2 = 0.69314718055994531f;
constexpr float kLog2e = 1.44269504088896341f;

using Tile = bf16[kTile][kPitch];

__device__ __forceinline__ uint32_t pack_f2(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// c += a b: one m16n8k16 tensor-core product, bf16 operands, fp32 accumulators.
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                    uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Fragment layouts of m16n8k16 (PTX ISA): g = lane / 4, t = 2 (lane % 4).
// A (16 x 16, row-major): a0 (g, t..t+1), a1 (g+8, t..), a2 (g, t+8..), a3 (g+8, t+8..).
// B (16 x 8, k x n): b0 (k = t..t+1, n = g), b1 (k = t+8.., n = g).
// C (16 x 8): c0, c1 (g, t..t+1), c2, c3 (g+8, t..t+1).
// Fragments come from shared memory through ldmatrix (four 8 x 8 matrices, lanes 8i..8i+7
// giving the row addresses of matrix i; .trans delivers the transposed matrix's fragment).
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const bf16* p) {
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const bf16* p) {
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
// Rows of a shared tile (a Tile, or the 128-row tiles of the one-pass backward).
using Rows = const bf16 (*)[kPitch];
// A fragment of rows r0.., cols c0.. (matrices: rows +0/+8 x cols +0/+8 -> a0..a3).
__device__ __forceinline__ void frag_a(uint32_t (&a)[4], Rows s, int r0, int c0, int lane) {
  ldsm_x4(a, &s[r0 + (lane & 7) + ((lane >> 3) & 1) * 8][c0 + (lane >> 4) * 8]);
}
// B fragments of n-tiles n0 and n0+8 (b[0], b[1] and b[2], b[3]) at k-chunk k0 from a tile
// stored [n][k] (B = tile^T).
__device__ __forceinline__ void frag_b_nk(uint32_t (&b)[4], Rows s, int n0, int k0, int lane) {
  ldsm_x4(b, &s[n0 + (lane & 7) + (lane >> 4) * 8][k0 + ((lane >> 3) & 1) * 8]);
}
// The same from a tile stored [k][n].
__device__ __forceinline__ void frag_b_kn(uint32_t (&b)[4], Rows s, int k0, int n0, int lane) {
  ldsm_x4_t(b, &s[k0 + (lane & 7) + ((lane >> 3) & 1) * 8][n0 + (lane >> 4) * 8]);
}

// c[0..NT) += a B[n0 .. n0+8NT, kc*16 .. +16)^T for one k-chunk's A fragment (B stored [n][k]).
template <int NT>
__device__ __forceinline__ void mma_kchunk(float (&c)[NT][4], const uint32_t (&a)[4], Rows B,
                                           int n0, int kc, int lane) {
  static_assert(NT % 2 == 0, "n-tiles come in pairs (one ldmatrix.x4)");
#pragma unroll
  for (int np = 0; np < NT / 2; ++np) {
    uint32_t b[4];
    frag_b_nk(b, B, n0 + np * 16, kc * 16, lane);
    mma(c[2 * np], a, b[0], b[1]);
    mma(c[2 * np + 1], a, b[2], b[3]);
  }
}
template <int NT>
__device__ __forceinline__ void zero(float (&c)[NT][4]) {
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) c[nt][e] = 0.f;
}
// c = A[r0 .. r0+16, 0..64) B[n0 .. n0+8NT, 0..64)^T, B stored [n][k]: 16 x 8NT in NT n-tiles.
template <int NT>
__device__ __forceinline__ void mm_abt(float (&c)[NT][4], Rows A, int r0, Rows B, int n0,
                                       int lane) {
  zero(c);
#pragma unroll
  for (int kc = 0; kc < 4; ++kc) {
    uint32_t a[4];
    frag_a(a, A, r0, kc * 16, lane);
    mma_kchunk(c, a, B, n0, kc, lane);
  }
}
// The same with A's four k-chunk fragments already in registers (frags_a).
__device__ __forceinline__ void frags_a(uint32_t (&a)[4][4], Rows A, int r0, int lane) {
#pragma unroll
  for (int kc = 0; kc < 4; ++kc) frag_a(a[kc], A, r0, kc * 16, lane);
}
template <int NT>
__device__ __forceinline__ void mm_fbt(float (&c)[NT][4], const uint32_t (&a)[4][4], Rows B,
                                       int n0, int lane) {
  zero(c);
#pragma unroll
  for (int kc = 0; kc < 4; ++kc) mma_kchunk(c, a[kc], B, n0, kc, lane);
}
// c += P B[k0 .. k0+8NT, 0..64), P a 16 x 8NT matrix held as accumulators (rounded to bf16: the
// C layout of two adjacent n-tiles is the A layout of one k-chunk), B stored [k][n].
template <int NT>
__device__ __forceinline__ void mm_pb(float (&c)[8][4], const float (&p)[NT][4], Rows B, int k0,
                                      int lane) {
#pragma unroll
  for (int kc = 0; kc < NT / 2; ++kc) {
    uint32_t a[4] = {pack_f2(p[2 * kc][0], p[2 * kc][1]), pack_f2(p[2 * kc][2], p[2 * kc][3]),
                     pack_f2(p[2 * kc + 1][0], p[2 * kc + 1][1]),
                     pack_f2(p[2 * kc + 1][2], p[2 * kc + 1][3])};
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      uint32_t b[4];
      frag_b_kn(b, B, k0 + kc * 16, np * 16, lane);
      mma(c[2 * np], a, b[0], b[1]);
      mma(c[2 * np + 1], a, b[2], b[3]);
    }
  }
}

// A tile's rows t0 .. t0+64 of head (b, h) of a view in two steps, so that the global loads of
// several tiles are in flight together (and the next tile's overlap the current products):
// fetch into registers (16 bytes x 4 per thread, rows >= T zero), then store into shared
// memory, adding the bias there (bf16-rounded after an fp32 add, as qkv_split does).
struct Frag {
  uint4 u[4];
};
__device__ __forceinline__ void fetch(Frag& f, const HeadView& v, int b, int h, int t0, int T) {
  const bf16* base = v.p + b * v.sb + h * v.sh;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int c = threadIdx.x + i * kThreads, r = c >> 3, col = (c & 7) * 8, t = t0 + r;
    f.u[i] = t < T ? *reinterpret_cast<const uint4*>(base + t * v.st + col)
                   : make_uint4(0u, 0u, 0u, 0u);
  }
}
__device__ __forceinline__ void store(Tile& s, Frag& f, const float* bias, int h) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int c = threadIdx.x + i * kThreads, r = c >> 3, col = (c & 7) * 8;
    if (bias) {
      bf16* e = reinterpret_cast<bf16*>(&f.u[i]);
#pragma unroll
      for (int k = 0; k < 8; ++k)
        e[k] = __float2bfloat16(__bfloat162float(e[k]) + bias[h * kD + col + k]);
    }
    *reinterpret_cast<uint4*>(&s[r][col]) = f.u[i];
  }
}

// Rows r0 .. r0+16 of a 16 x 64 accumulator into rows of a view (rows >= T skipped), scaled
// per row half by mul[0] (row g) and mul[1] (row g+8).
__device__ __forceinline__ void store_rows(const HeadView& v, int b, int h, const int (&rows)[2],
                                           int T, const float (&c)[8][4], const float (&mul)[2],
                                           int lane) {
  bf16* base = v.p + b * v.sb + h * v.sh;
  const int t = (lane & 3) * 2;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (rows[r] >= T) continue;
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
      *reinterpret_cast<uint32_t*>(base + rows[r] * v.st + nt * 8 + t) =
          pack_f2(c[nt][2 * r] * mul[r], c[nt][2 * r + 1] * mul[r]);
  }
}

// The same through a warp's 16-row staging tile in shared memory (rows r0 .. r0+16): the
// accumulator goes in as bf16 (32-bit writes, conflict-free with the 144-byte pitch), then out
// with 16-byte stores, 8 lanes a row (rows >= T skipped).
__device__ __forceinline__ void store_rows_staged(const HeadView& v, int b, int h, int r0, int T,
                                                  const float (&c)[8][4], const float (&mul)[2],
                                                  bf16 (*stage)[kPitch], int lane) {
  const int g = lane >> 2, t = (lane & 3) * 2;
  __syncwarp();  // earlier reads of the staging rows are done
#pragma unroll
  for (int r = 0; r < 2; ++r)
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
      *reinterpret_cast<uint32_t*>(&stage[g + 8 * r][nt * 8 + t]) =
          pack_f2(c[nt][2 * r] * mul[r], c[nt][2 * r + 1] * mul[r]);
  __syncwarp();
  bf16* base = v.p + b * v.sb + h * v.sh;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int ch = lane + 32 * i, r = ch >> 3, col = (ch & 7) * 8;
    if (r0 + r < T)
      *reinterpret_cast<uint4*>(base + (long long)(r0 + r) * v.st + col) =
          *reinterpret_cast<const uint4*>(&stage[r][col]);
  }
}

__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}
__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

// The forward's running state of one warp's 16 query rows rows[] (C layout: rows g, g + 8):
// maximum m, sum l of e^(z - m) and sum sz of e^(z - m)(z - m) (base 2), and O unnormalized.
struct FwdRows {
  int rows[2];
  float inv2[2];  // scale / t in base 2 (logits times log2 e)
  float m[2], l[2], sz[2];
  float o[8][4];
};
__device__ __forceinline__ void fwd_rows_init(FwdRows& st, const FlashFwdArgs& a, int h, int r0,
                                              int lane) {
  const int g = lane >> 2;
  st.rows[0] = r0 + g;
  st.rows[1] = r0 + g + 8;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    st.inv2[r] = st.rows[r] < a.T ? a.scale / temp_value(a.temp, a.temp_param, h * a.ctx + st.rows[r]) *
                                        kLog2e
                                  : 0.f;
    st.m[r] = -INFINITY;
    st.l[r] = st.sz[r] = 0.f;
  }
  zero(st.o);
}
// One slab of keys j0 .. j0 + 8NT (shared rows n0 .. of V): s holds the scores S of the rows
// against them; masks (key <= row), rescales the running state and adds P V. The slab must
// start at a key <= each row (so the maximum is finite after the first slab).
template <int NT>
__device__ __forceinline__ void fwd_rows_step(FwdRows& st, float (&s)[NT][4], Rows V, int n0,
                                              int j0, int lane) {
  const int tq = (lane & 3) * 2;
  float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int r = e >> 1, j = j0 + nt * 8 + tq + (e & 1);
      const float z = j <= st.rows[r] ? s[nt][e] * st.inv2[r] : -INFINITY;
      s[nt][e] = z;
      mx[r] = fmaxf(mx[r], z);
    }
  float alpha[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float mn = fmaxf(st.m[r], quad_max(mx[r]));
    alpha[r] = exp2f(st.m[r] - mn);  // 0 on the first slab
    // sum e^(z - m)(z - m) relative to the new maximum
    st.sz[r] = st.l[r] > 0.f ? alpha[r] * (st.sz[r] + (st.m[r] - mn) * st.l[r]) : 0.f;
    st.l[r] *= alpha[r];
    st.m[r] = mn;
  }
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int r = e >> 1;
      const float z = s[nt][e];
      float p = 0.f;
      if (z != -INFINITY) {
        p = exp2f(z - st.m[r]);
        st.l[r] += p;
        st.sz[r] += p * (z - st.m[r]);
      }
      s[nt][e] = p;
    }
#pragma unroll
  for (int nt = 0; nt < 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) st.o[nt][e] *= alpha[e >> 1];
  mm_pb(st.o, s, V, n0, lane);
}
// O = o / l into the output view, and the rows' lse, entropy, penalty and dLoss/dE.
// stage: a warp staging tile for the rows (store_rows_staged), or null.
__device__ __forceinline__ void fwd_rows_finish(FwdRows& st, const FlashFwdArgs& a, int b, int h,
                                                int lane, bf16 (*stage)[kPitch] = nullptr) {
  const int tq = (lane & 3) * 2, bh = b * a.H + h;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    st.l[r] = quad_sum(st.l[r]);
    st.sz[r] = quad_sum(st.sz[r]);
  }
  const float il[2] = {1.f / st.l[0], 1.f / st.l[1]};
  if (stage)
    store_rows_staged(a.o, b, h, st.rows[0] - (lane >> 2), a.T, st.o, il, stage, lane);
  else
    store_rows(a.o, b, h, st.rows, a.T, st.o, il, lane);
  if (tq != 0) return;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (st.rows[r] >= a.T) continue;
    const size_t row = size_t(bh) * a.T + st.rows[r];
    const float ent = logf(st.l[r]) - kLn2 * st.sz[r] / st.l[r];
    if (a.lse) a.lse[row] = (st.m[r] + log2f(st.l[r])) * kLn2;
    if (a.rowE) a.rowE[row] = ent;
    if (a.theta) {
      const float delta = ent - a.theta[h] * a.lnT;
      const bool on = fabsf(delta) > a.tol;
      a.pen[row] = on ? delta * delta : 0.f;
      a.gE[row] = on ? a.coef * 2.f * delta : 0.f;
    }
  }
}

__global__ void __launch_bounds__(kThreads) k_flash_fwd(FlashFwdArgs a) {
  __shared__ __align__(16) Tile sQ, sK, sV;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int bh = blockIdx.y, b = bh / a.H, h = bh % a.H, q0 = blockIdx.x * kTile, T = a.T;
  Frag fq, fk, fv;
  fetch(fq, a.q, b, h, q0, T);
  fetch(fk, a.k, b, h, 0, T);
  fetch(fv, a.v, b, h, 0, T);
  store(sQ, fq, a.bq, h);
  FwdRows st;
  fwd_rows_init(st, a, h, q0 + warp * 16, lane);
  const int last = min(q0 + kTile, T) - 1;  // the last key any row of the block sees
  // Every tile processed starts at a key k0 <= q0 <= each row.
  for (int k0 = 0; k0 <= last; k0 += kTile) {
    __syncthreads();
    store(sK, fk, a.bk, h);
    store(sV, fv, a.bv, h);
    __syncthreads();
    if (k0 + kTile <= last) {  // the next tile's loads overlap this tile's products
      fetch(fk, a.k, b, h, k0 + kTile, T);
      fetch(fv, a.v, b, h, k0 + kTile, T);
    }
    float s[8][4];
    mm_abt(s, sQ, warp * 16, sK, 0, lane);
    fwd_rows_step(st, s, sV, 0, k0, lane);
  }
  fwd_rows_finish(st, a, b, h, lane);
}

// Per-row statistics the backward needs (zeros for rows >= T, which are masked anyway); D is
// set by the caller (Drow, or the one-pass kernel's own sum).
struct RowStats {
  float inv, lse, D, E, gE;
};
__device__ __forceinline__ RowStats row_stats(const FlashBwdArgs& a, int h, size_t row, int i) {
  RowStats st{0.f, 0.f, 0.f, 0.f, 0.f};
  if (i >= a.f.T) return st;
  const FlashFwdArgs& f = a.f;
  st.inv = f.scale / temp_value(f.temp, f.temp_param, h * f.ctx + i);
  st.lse = f.lse[row];
  st.E = f.rowE[row];
  st.gE = a.gE ? a.gE[row] : 0.f;
  return st;
}
// dLoss/dS of one score given its recomputed logit-minus-lse la = ln a and dP.
__device__ __forceinline__ float dz_of(float la, float dp, const RowStats& st) {
  return __expf(la) * (dp - st.D - st.gE * (la + st.E));
}
// x . y of 8 bf16 pairs, summed over the 8 lanes that hold one 64-column row (lanes 8k..8k+7).
__device__ __forceinline__ float row_dot8(const uint4& xu, const uint4& yu) {
  const bf16* x = reinterpret_cast<const bf16*>(&xu);
  const bf16* y = reinterpret_cast<const bf16*>(&yu);
  float acc = 0.f;
#pragma unroll
  for (int k = 0; k < 8; ++k) acc += __bfloat162float(x[k]) * __bfloat162float(y[k]);
  acc += __shfl_xor_sync(0xffffffffu, acc, 1);
  acc += __shfl_xor_sync(0xffffffffu, acc, 2);
  return acc + __shfl_xor_sync(0xffffffffu, acc, 4);
}

// Query-row side: s holds the scores S and dp the dP of rows[] (C layout) against keys
// j0 + 0 .. 8NT; s becomes dS (0 where masked) and acc_t gathers sum_j dz_j ln a_j.
template <int NT>
__device__ __forceinline__ void ds_of_rows(float (&s)[NT][4], const float (&dp)[NT][4], int j0,
                                           const int (&rows)[2], const RowStats (&st)[2], int T,
                                           float (&acc_t)[2], int tq) {
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int r = e >> 1, j = j0 + nt * 8 + tq + (e & 1);
      float ds = 0.f;
      if (rows[r] < T && j <= rows[r]) {
        const float la = s[nt][e] * st[r].inv - st[r].lse;
        const float dz = dz_of(la, dp[nt][e], st[r]);
        acc_t[r] += dz * la;
        ds = dz * st[r].inv;
      }
      s[nt][e] = ds;
    }
}
// Key-row side: s holds S^T and dp dP^T of keys[] (C layout) against queries i0 + 0 .. 8NT
// (stats st[i - i0]); s becomes P^T and dp dS^T (0 where masked).
template <int NT>
__device__ __forceinline__ void p_ds_of_keys(float (&s)[NT][4], float (&dp)[NT][4], int i0,
                                             const int (&keys)[2], const RowStats* st, int T,
                                             int tq) {
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int r = e >> 1, ci = nt * 8 + tq + (e & 1), i = i0 + ci;
      float p = 0.f, ds = 0.f;
      if (i < T && keys[r] <= i) {
        const RowStats& sti = st[ci];
        const float la = s[nt][e] * sti.inv - sti.lse;
        p = __expf(la);
        ds = dz_of(la, dp[nt][e], sti) * sti.inv;
      }
      s[nt][e] = p;
      dp[nt][e] = ds;
    }
}
// The per-row temperature gradient of rows[] from the lanes' partial sums of dz ln a.
__device__ __forceinline__ void store_dtemp(const FlashBwdArgs& a, int h, int bh,
                                            const int (&rows)[2], const float (&acc_t)[2],
                                            int tq) {
  const FlashFwdArgs& f = a.f;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float at = quad_sum(acc_t[r]);
    if (tq != 0 || rows[r] >= f.T) continue;
    // dz/dt = -z/t -> dL/dt = -(1/t) sum dz z; chained to the raw parameter
    const float t = temp_value(f.temp, f.temp_param, h * f.ctx + rows[r]);
    const float dt = -at / t;
    a.dtemp_row[size_t(bh) * f.T + rows[r]] = f.temp_param == TempParam::exp ? dt * t : dt;
  }
}

// One halving step of warp_colsum: lanes with `kBit` set keep the upper kHalf of v[0 .. 2 kHalf)
// (moved down to v[0 .. kHalf)), the others the lower, each adding its partner's copy.
template <int kHalf, int kBit>
__device__ __forceinline__ void colsum_step(float (&v)[16], int lane) {
  const bool hi = lane & kBit;
#pragma unroll
  for (int k = 0; k < kHalf; ++k) {
    const float send = hi ? v[k] : v[k + kHalf], keep = hi ? v[k + kHalf] : v[k];
    v[k] = keep + __shfl_xor_sync(0xffffffffu, send, kBit);
  }
}
// Column sums of one warp's 16 x 64 accumulator (the C layout of store_rows) -> out[0..64) in
// shared memory. Each lane's 16 column partials (rows g and g + 8 added) are summed over the 8
// lanes g by a halving exchange: at each step a lane keeps half of its columns and adds its
// partner's half (8 + 4 + 2 shuffles), ending with 2 complete sums per lane.
__device__ __forceinline__ void warp_colsum(const float (&c)[8][4], float* out, int lane) {
  float v[16];  // v[2 nt + e]: column nt * 8 + tq + e
#pragma unroll
  for (int nt = 0; nt < 8; ++nt)
#pragma unroll
    for (int e = 0; e < 2; ++e) v[2 * nt + e] = c[nt][e] + c[nt][2 + e];
  colsum_step<8, 16>(v, lane);
  colsum_step<4, 8>(v, lane);
  colsum_step<2, 4>(v, lane);
  const int j = (lane & 16 ? 8 : 0) + (lane & 8 ? 4 : 0) + (lane & 4 ? 2 : 0);  // even: e = 0, 1
  const int col = (j >> 1) * 8 + (lane & 3) * 2;
  out[col] = v[0];
  out[col + 1] = v[1];
}
// Column sums of a block's 64 x 64 accumulator tile (warp w: rows 16w..) -> out[0..64): the
// block's partial of the qkv bias gradient. Rows >= T hold 0. Every thread of the block must
// call it (two barriers).
__device__ __forceinline__ void tile_colsum(const float (&c)[8][4], float* out, int lane,
                                            int warp) {
  __shared__ float red[kThreads / 32][kD];
  warp_colsum(c, red[warp], lane);
  __syncthreads();
  if (threadIdx.x < kD) {
    float t = 0.f;
#pragma unroll
    for (int w = 0; w < kThreads / 32; ++w) t += red[w][threadIdx.x];
    out[threadIdx.x] = t;
  }
  __syncthreads();
}
// Where the qkv bias partial of (batch b, 64-row tile, head h) for which = 0 (q), 1 (k), 2 (v)
// goes (ntile = ceil(T / 64)).
__device__ __forceinline__ float* part_at(const FlashBwdArgs& a, int b, int ntile, int tile,
                                          int h, int which) {
  return a.dbias_part + (size_t(b) * ntile + tile) * 3 * a.f.H * kD +
         (size_t(which) * a.f.H + h) * kD;
}

// dQ (and D_i = dO_i . O_i, the per-row temperature gradient) by query tiles.
__global__ void __launch_bounds__(kThreads, 3) k_flash_bwd_dq(FlashBwdArgs a) {
  __shared__ __align__(16) Tile sQ, sdO, sK, sV;
  const FlashFwdArgs& f = a.f;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, tq = (lane & 3) * 2;
  const int bh = blockIdx.y, b = bh / f.H, h = bh % f.H, q0 = blockIdx.x * kTile, T = f.T;
  Frag fq, fdo, fo, fk, fv;
  fetch(fq, f.q, b, h, q0, T);
  fetch(fdo, a.dO, b, h, q0, T);
  fetch(fo, f.o, b, h, q0, T);
  fetch(fk, f.k, b, h, 0, T);
  fetch(fv, f.v, b, h, 0, T);
  // D_i = dO_i . O_i from the registers: the 8 lanes of a row hold its 64 columns
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float acc = row_dot8(fdo.u[i], fo.u[i]);
    const int r = (threadIdx.x + i * kThreads) >> 3;
    if ((threadIdx.x & 7) == 0 && q0 + r < T) a.Drow[size_t(bh) * T + q0 + r] = acc;
  }
  store(sQ, fq, f.bq, h);
  store(sdO, fdo, nullptr, h);
  __syncthreads();  // D visible to the block (read back through global memory below)
  const int rows[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
  RowStats st[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    st[r] = row_stats(a, h, size_t(bh) * T + rows[r], rows[r]);
    if (rows[r] < T) st[r].D = a.Drow[size_t(bh) * T + rows[r]];
  }
  float dq[8][4];
  zero(dq);
  float acc_t[2] = {0.f, 0.f};
  const int last = min(q0 + kTile, T) - 1;
  for (int k0 = 0; k0 <= last; k0 += kTile) {
    __syncthreads();
    store(sK, fk, f.bk, h);
    store(sV, fv, f.bv, h);
    __syncthreads();
    if (k0 + kTile <= last) {
      fetch(fk, f.k, b, h, k0 + kTile, T);
      fetch(fv, f.v, b, h, k0 + kTile, T);
    }
    float s[8][4], dp[8][4];
    mm_abt(s, sQ, warp * 16, sK, 0, lane);
    mm_abt(dp, sdO, warp * 16, sV, 0, lane);
    ds_of_rows(s, dp, k0, rows, st, T, acc_t, tq);
    mm_pb(dq, s, sK, 0, lane);
  }
  const float one[2] = {1.f, 1.f};
  store_rows(a.dq, b, h, rows, T, dq, one, lane);
  if (a.dbias_part) tile_colsum(dq, part_at(a, b, gridDim.x, blockIdx.x, h, 0), lane, warp);
  if (a.dtemp_row) store_dtemp(a, h, bh, rows, acc_t, tq);
}

// dK, dV by key tiles (after k_flash_bwd_dq, which writes D). (Capping it at 168 registers,
// 3 blocks per SM instead of 2, cost a few spills and was no faster on the H200.)
__global__ void __launch_bounds__(kThreads) k_flash_bwd_dkv(FlashBwdArgs a) {
  __shared__ __align__(16) Tile sK, sV, sQ, sdO;
  __shared__ RowStats sst[kTile];
  const FlashFwdArgs& f = a.f;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, tq = (lane & 3) * 2;
  const int bh = blockIdx.y, b = bh / f.H, h = bh % f.H, k0 = blockIdx.x * kTile, T = f.T;
  Frag fk, fv, fq, fdo;
  fetch(fk, f.k, b, h, k0, T);
  fetch(fv, f.v, b, h, k0, T);
  fetch(fq, f.q, b, h, k0, T);
  fetch(fdo, a.dO, b, h, k0, T);
  store(sK, fk, f.bk, h);
  store(sV, fv, f.bv, h);
  const int keys[2] = {k0 + warp * 16 + g, k0 + warp * 16 + g + 8};
  float dk[8][4], dv[8][4];
  zero(dk);
  zero(dv);
  for (int q0 = k0; q0 < T; q0 += kTile) {
    __syncthreads();
    store(sQ, fq, f.bq, h);
    store(sdO, fdo, nullptr, h);
    for (int i = threadIdx.x; i < kTile; i += kThreads) {
      const size_t row = size_t(bh) * T + q0 + i;
      sst[i] = row_stats(a, h, row, q0 + i);
      if (q0 + i < T) sst[i].D = a.Drow[row];
    }
    __syncthreads();
    if (q0 + kTile < T) {
      fetch(fq, f.q, b, h, q0 + kTile, T);
      fetch(fdo, a.dO, b, h, q0 + kTile, T);
    }
    float s[8][4], dp[8][4];
    mm_abt(s, sK, warp * 16, sQ, 0, lane);   // S^T
    mm_abt(dp, sV, warp * 16, sdO, 0, lane);  // dP^T
    p_ds_of_keys(s, dp, q0, keys, sst, T, tq);
    mm_pb(dv, s, sdO, 0, lane);  // dV += P^T dO
    mm_pb(dk, dp, sQ, 0, lane);  // dK += dS^T Q
  }
  const float one[2] = {1.f, 1.f};
  store_rows(a.dk, b, h, keys, T, dk, one, lane);
  store_rows(a.dv, b, h, keys, T, dv, one, lane);
  if (a.dbias_part) {
    tile_colsum(dk, part_at(a, b, gridDim.x, blockIdx.x, h, 1), lane, warp);
    tile_colsum(dv, part_at(a, b, gridDim.x, blockIdx.x, h, 2), lane, warp);
  }
}

// ---- one-pass kernels for T <= 128 ----
// One block per (batch, head) holds the whole sequence's Q, K, V (and dO) in shared memory,
// loaded once by cp.async, so nothing is fetched twice; the tiled kernels above fetch key tiles
// once per query tile and the backward's inputs twice. The causal work is split so that every
// warp gets the same amount (below). Keys (queries) go in slabs of W = 16, 32 or 64: wider
// slabs give each warp more independent tensor-core chains (the kernels are latency-bound at
// 4 warps per scheduler) at the price of masked work on the diagonal; AERO_GPU_FLASH_SLAB
// ("F,A,B": forward, dQ side, dK/dV side) picks them.
constexpr int kRows1 = 128;
using BigTile = bf16[kRows1][kPitch];
using Stage = bf16[16][kPitch];  // one warp's 16 output rows on their way out

// Row r, columns col.. of head (b, h) of a view.
__device__ __forceinline__ const bf16* view_at(const HeadView& v, int b, int h, int r, int col) {
  return v.p + b * v.sb + h * v.sh + (long long)r * v.st + col;
}
__device__ __forceinline__ void add_bias8(bf16* x, const float (&bias)[8]) {
  uint4 u = *reinterpret_cast<const uint4*>(x);
  bf16* e = reinterpret_cast<bf16*>(&u);
#pragma unroll
  for (int k = 0; k < 8; ++k) e[k] = __float2bfloat16(__bfloat162float(e[k]) + bias[k]);
  *reinterpret_cast<uint4*>(x) = u;
}
// Rows 0 .. 128 of head (b, h) of views into shared tiles (rows >= T zero), in two steps so
// that other loads can go out in between: issue_heads starts the copies (16-byte chunk c =
// threadIdx.x + i * nthreads: row c / 8, columns (c % 8) * 8 .., the same columns for all of a
// thread's chunks), finish_heads waits for them, adds the biases (bf16-rounded after an fp32
// add, as store()) and ends with a barrier.
template <int kN>
__device__ __forceinline__ void issue_heads(BigTile* const (&dst)[kN],
                                            const HeadView* const (&src)[kN], int b, int h, int T,
                                            int nthreads) {
  for (int c = threadIdx.x; c < kRows1 * 8; c += nthreads) {
    const int r = c >> 3, col = (c & 7) * 8;
    const bool in = r < T;
#pragma unroll
    for (int m = 0; m < kN; ++m)
      cp_async16(&(*dst[m])[r][col], view_at(*src[m], b, h, in ? r : 0, col), in);
  }
}
template <int kN>
__device__ __forceinline__ void finish_heads(BigTile* const (&dst)[kN],
                                             const float* const (&bias)[kN], int h, int T,
                                             int nthreads) {
  cp_async_wait_all();  // this thread's copies have landed (and are visible to it)
  const int col = (threadIdx.x & 7) * 8;
#pragma unroll
  for (int m = 0; m < kN; ++m) {
    if (!bias[m]) continue;
    float bv[8];
    const float4* bp = reinterpret_cast<const float4*>(bias[m] + h * kD + col);
    *reinterpret_cast<float4*>(bv) = bp[0];
    *reinterpret_cast<float4*>(bv + 4) = bp[1];
    for (int r = threadIdx.x >> 3; r < T; r += nthreads >> 3) add_bias8(&(*dst[m])[r][col], bv);
  }
  __syncthreads();
}

// Backward: 8 warps. Warp w owns query rows 16w.. (dQ: S and dP against keys <= its rows) and
// key rows 16w.. (dK, dV: S^T and dP^T against queries >= its keys); the two jobs need no
// barrier between them, and their causal work adds up to the same nine 16 x 16 blocks for
// every warp ((w + 1) for dQ, (8 - w) for dK/dV; with wider slabs, the same slab count). The
// scores are recomputed once for each side (as in the tiled kernels) rather than staged:
// staging P and dS for 128 x 128 would not leave room for two blocks per multiprocessor.
constexpr int kThreads1 = 256;
constexpr int kWarps1 = kThreads1 / 32;
struct OnePassSmem {
  BigTile q, k, v, dO;
  RowStats st[kRows1];
  float red[3][kWarps1][kD];  // per-warp column sums of dq, dk, dv (bias partials)
  Stage stage[kWarps1];
};

template <int NA, int NB>  // n-tiles (8 keys / queries each) per slab: dQ side, dK/dV side
__global__ void __launch_bounds__(kThreads1, 2) k_flash_bwd_onepass(FlashBwdArgs a) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  OnePassSmem& sm = *reinterpret_cast<OnePassSmem*>(smem_raw);
  const FlashFwdArgs& f = a.f;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, tq = (lane & 3) * 2;
  const int bh = blockIdx.x, b = bh / f.H, h = bh % f.H, T = f.T;
  BigTile* const tiles[4] = {&sm.q, &sm.k, &sm.v, &sm.dO};
  issue_heads<4>(tiles, {&f.q, &f.k, &f.v, &a.dO}, b, h, T, kThreads1);
  // while the copies run: O (for D_i = dO_i . O_i; the 8 lanes of a row hold its 64 columns)
  // and the row statistics of this thread's chunks' rows
  constexpr int kChunks = kRows1 * kD / 8 / kThreads1;  // 16-byte chunks per thread
  uint4 o[kChunks];
  RowStats rs[kChunks];
#pragma unroll
  for (int i = 0; i < kChunks; ++i) {
    const int c = threadIdx.x + i * kThreads1, r = c >> 3, col = (c & 7) * 8;
    o[i] = r < T ? *reinterpret_cast<const uint4*>(view_at(f.o, b, h, r, col))
                 : make_uint4(0u, 0u, 0u, 0u);
    if ((threadIdx.x & 7) == 0) rs[i] = row_stats(a, h, size_t(bh) * T + r, r);
  }
  finish_heads<4>(tiles, {f.bq, f.bk, f.bv, nullptr}, h, T, kThreads1);
#pragma unroll
  for (int i = 0; i < kChunks; ++i) {
    const int c = threadIdx.x + i * kThreads1, r = c >> 3, col = (c & 7) * 8;
    const float D = row_dot8(*reinterpret_cast<const uint4*>(&sm.dO[r][col]), o[i]);
    if ((threadIdx.x & 7) == 0) {
      rs[i].D = D;
      sm.st[r] = rs[i];
    }
  }
  __syncthreads();
  const int r0 = warp * 16;
  const float one[2] = {1.f, 1.f};
  {  // dQ of query rows r0 .. r0+16 (and the temperature gradient of those rows)
    const int rows[2] = {r0 + g, r0 + g + 8};
    float dq[8][4];
    zero(dq);
    if (r0 < T) {
      const RowStats st[2] = {sm.st[rows[0]], sm.st[rows[1]]};
      uint32_t qa[4][4], oa[4][4];
      frags_a(qa, sm.q, r0, lane);
      frags_a(oa, sm.dO, r0, lane);
      float acc_t[2] = {0.f, 0.f};
      const int nk = min(r0 + 16, T);
      for (int j0 = 0; j0 < nk; j0 += 8 * NA) {  // slabs end at multiples of 8 NA <= 128
        float s[NA][4], dp[NA][4];
        mm_fbt(s, qa, sm.k, j0, lane);
        mm_fbt(dp, oa, sm.v, j0, lane);
        ds_of_rows(s, dp, j0, rows, st, T, acc_t, tq);
        mm_pb(dq, s, sm.k, j0, lane);
      }
      store_rows_staged(a.dq, b, h, r0, T, dq, one, sm.stage[warp], lane);
      if (a.dtemp_row) store_dtemp(a, h, bh, rows, acc_t, tq);
    }
    if (a.dbias_part) warp_colsum(dq, sm.red[0][warp], lane);
  }
  {  // dK, dV of key rows r0 .. r0+16
    const int keys[2] = {r0 + g, r0 + g + 8};
    float dk[8][4], dv[8][4];
    zero(dk);
    zero(dv);
    // slabs aligned to 8 NB (so they end inside the 128 rows); the first starts at or before
    // the diagonal block
    for (int i0 = r0 / (8 * NB) * (8 * NB); i0 < T; i0 += 8 * NB) {
      float s[NB][4], dp[NB][4];
      mm_abt(s, sm.k, r0, sm.q, i0, lane);   // S^T
      mm_abt(dp, sm.v, r0, sm.dO, i0, lane);  // dP^T
      p_ds_of_keys(s, dp, i0, keys, sm.st + i0, T, tq);
      mm_pb(dv, s, sm.dO, i0, lane);  // dV += P^T dO
      mm_pb(dk, dp, sm.q, i0, lane);  // dK += dS^T Q
    }
    if (r0 < T) {
      store_rows_staged(a.dk, b, h, r0, T, dk, one, sm.stage[warp], lane);
      store_rows_staged(a.dv, b, h, r0, T, dv, one, sm.stage[warp], lane);
    }
    if (a.dbias_part) {
      warp_colsum(dk, sm.red[1][warp], lane);
      warp_colsum(dv, sm.red[2][warp], lane);
    }
  }
  if (!a.dbias_part) return;
  __syncthreads();
  // the block's partials in the tiled kernels' layout: one per 64-row tile (warps 4t .. 4t+3)
  const int ntile = (T + kTile - 1) / kTile;
  for (int idx = threadIdx.x; idx < 3 * ntile * kD; idx += kThreads1) {
    const int which = idx / (ntile * kD), tile = idx / kD % ntile, c = idx % kD;
    float t = 0.f;
#pragma unroll
    for (int w = 0; w < 4; ++w) t += sm.red[which][tile * 4 + w][c];
    part_at(a, b, ntile, tile, h, which)[c] = t;
  }
}

// Forward: 4 warps; warp w runs the query row blocks w and 7 - w (16 rows each) over their
// keys, so every warp has the same causal work (nine 16 x 16 blocks). O of a row block is
// staged in its own Q rows (read only by this warp, before) on its way out.
constexpr int kThreadsF1 = 128;
struct OnePassFwdSmem {
  BigTile q, k, v;
};
template <int NF>  // n-tiles (8 keys each) per slab
__global__ void __launch_bounds__(kThreadsF1) k_flash_fwd_onepass(FlashFwdArgs a) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  OnePassFwdSmem& sm = *reinterpret_cast<OnePassFwdSmem*>(smem_raw);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int bh = blockIdx.x, b = bh / a.H, h = bh % a.H, T = a.T;
  BigTile* const tiles[3] = {&sm.q, &sm.k, &sm.v};
  issue_heads<3>(tiles, {&a.q, &a.k, &a.v}, b, h, T, kThreadsF1);
  finish_heads<3>(tiles, {a.bq, a.bk, a.bv}, h, T, kThreadsF1);
#pragma unroll 1
  for (int half = 0; half < 2; ++half) {
    const int r0 = 16 * (half == 0 ? warp : 7 - warp);
    if (r0 >= T) continue;
    FwdRows st;
    fwd_rows_init(st, a, h, r0, lane);
    uint32_t qa[4][4];
    frags_a(qa, sm.q, r0, lane);
    for (int j0 = 0; j0 <= r0; j0 += 8 * NF) {  // slabs end at multiples of 8 NF <= 128
      float s[NF][4];
      mm_fbt(s, qa, sm.k, j0, lane);
      fwd_rows_step(st, s, sm.v, j0, j0, lane);
    }
    fwd_rows_finish(st, a, b, h, lane, &sm.q[r0]);
  }
}

// Slab widths of the one-pass kernels in n-tiles (AERO_GPU_FLASH_SLAB="F,A,B" in keys: 16, 32
// or 64 for F, 16 or 32 for A and B; read once).
struct Slabs {
  int f = 4, a = 2, b = 2;  // 32, 16, 16: the fastest on the H200 (docs/benchmarks.md)
};
const Slabs& slabs() {
  static const Slabs s = [] {
    Slabs r;
    if (const char* e = std::getenv("AERO_GPU_FLASH_SLAB")) {
      int f = 0, x = 0, y = 0;
      if (std::sscanf(e, "%d,%d,%d", &f, &x, &y) != 3 || (f != 16 && f != 32 && f != 64) ||
          (x != 16 && x != 32) || (y != 16 && y != 32))
        fail(std::string("AERO_GPU_FLASH_SLAB must be F,A,B (F 16/32/64, A and B 16/32): ") + e);
      r = Slabs{f / 8, x / 8, y / 8};
    }
    return r;
  }();
  return s;
}

// One block per (batch, head) with the kernel's shared-memory layout.
template <auto kKernel, class Args>
void launch_onepass(const Args& a, cudaStream_t s) {
  constexpr bool fwd = std::is_same_v<Args, FlashFwdArgs>;
  const FlashFwdArgs& f = [&]() -> const FlashFwdArgs& {
    if constexpr (fwd) return a; else return a.f;
  }();
  const int smem = fwd ? int(sizeof(OnePassFwdSmem)) : int(sizeof(OnePassSmem));
  allow_dynamic_smem<kKernel>(smem);
  kKernel<<<unsigned(f.B * f.H), fwd ? kThreadsF1 : kThreads1, smem, s>>>(a);
  AERO_LAUNCH_CHECK();
}

void check_view(const HeadView& v, const char* what) {
  if (v.p == nullptr || reinterpret_cast<uintptr_t>(v.p) % 16 != 0 || v.sb % 8 != 0 ||
      v.sh % 8 != 0 || v.st % 8 != 0)
    fail(std::string("flash attention: view ") + what +
         " must be 16-byte aligned with strides that are multiples of 8 elements");
}
void check_fwd(const FlashFwdArgs& a) {
  check_view(a.q, "q");
  check_view(a.k, "k");
  check_view(a.v, "v");
  check_view(a.o, "o");
  if (a.B * a.H > 65535) fail("flash attention: B*H > 65535");
  for (const float* bias : {a.bq, a.bk, a.bv})
    if (reinterpret_cast<uintptr_t>(bias) % 16 != 0)
      fail("flash attention: biases must be 16-byte aligned");
}

}  // namespace

bool flash_attn_supported(int dk) { return dk == kD; }

void flash_attn_forward(const FlashFwdArgs& a, cudaStream_t s) {
  check_fwd(a);
  if (a.T <= 0 || a.B * a.H == 0) return;
  if (a.T <= kRows1 && !a.tiled) {
    const int nf = slabs().f;
    if (nf == 2) launch_onepass<k_flash_fwd_onepass<2>>(a, s);
    else if (nf == 4) launch_onepass<k_flash_fwd_onepass<4>>(a, s);
    else launch_onepass<k_flash_fwd_onepass<8>>(a, s);
    return;
  }
  dim3 grid(unsigned((a.T + kTile - 1) / kTile), unsigned(a.B * a.H));
  k_flash_fwd<<<grid, kThreads, 0, s>>>(a);
  AERO_LAUNCH_CHECK();
}

void flash_attn_backward(const FlashBwdArgs& a, cudaStream_t s) {
  check_fwd(a.f);
  check_view(a.dO, "dO");
  check_view(a.dq, "dq");
  check_view(a.dk, "dk");
  check_view(a.dv, "dv");
  if (!a.f.lse || !a.f.rowE || !a.Drow) fail("flash attention backward: lse, rowE, Drow needed");
  if (a.f.T <= 0 || a.f.B * a.f.H == 0) return;
  if (a.f.T <= kRows1 && !a.f.tiled) {
    const Slabs& sl = slabs();
    if (sl.a == 2 && sl.b == 2) launch_onepass<k_flash_bwd_onepass<2, 2>>(a, s);
    else if (sl.a == 4 && sl.b == 2) launch_onepass<k_flash_bwd_onepass<4, 2>>(a, s);
    else if (sl.a == 2) launch_onepass<k_flash_bwd_onepass<2, 4>>(a, s);
    else launch_onepass<k_flash_bwd_onepass<4, 4>>(a, s);
    return;
  }
  dim3 grid(unsigned((a.f.T + kTile - 1) / kTile), unsigned(a.f.B * a.f.H));
  k_flash_bwd_dq<<<grid, kThreads, 0, s>>>(a);
  AERO_LAUNCH_CHECK();
  k_flash_bwd_dkv<<<grid, kThreads, 0, s>>>(a);
  AERO_LAUNCH_CHECK();
}

}  // namespace aero::cuda
