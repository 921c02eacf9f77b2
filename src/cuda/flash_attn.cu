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
// A fragment of rows r0.., cols c0.. (matrices: rows +0/+8 x cols +0/+8 -> a0..a3).
__device__ __forceinline__ void frag_a(uint32_t (&a)[4], const Tile& s, int r0, int c0, int lane) {
  ldsm_x4(a, &s[r0 + (lane & 7) + ((lane >> 3) & 1) * 8][c0 + (lane >> 4) * 8]);
}
// B fragments of n-tiles n0 and n0+8 (b[0], b[1] and b[2], b[3]) at k-chunk k0 from a tile
// stored [n][k] (B = tile^T).
__device__ __forceinline__ void frag_b_nk(uint32_t (&b)[4], const Tile& s, int n0, int k0,
                                          int lane) {
  ldsm_x4(b, &s[n0 + (lane & 7) + (lane >> 4) * 8][k0 + ((lane >> 3) & 1) * 8]);
}
// The same from a tile stored [k][n].
__device__ __forceinline__ void frag_b_kn(uint32_t (&b)[4], const Tile& s, int k0, int n0,
                                          int lane) {
  ldsm_x4_t(b, &s[k0 + (lane & 7) + ((lane >> 3) & 1) * 8][n0 + (lane >> 4) * 8]);
}

// c = A[r0 .. r0+16, 0..64) B^T, B stored [64 n][64 k]: a 16 x 64 result in 8 n-tiles.
__device__ __forceinline__ void mm_abt(float (&c)[8][4], const Tile& A, int r0, const Tile& B,
                                       int lane) {
#pragma unroll
  for (int nt = 0; nt < 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) c[nt][e] = 0.f;
#pragma unroll
  for (int kc = 0; kc < 4; ++kc) {
    uint32_t a[4];
    frag_a(a, A, r0, kc * 16, lane);
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      uint32_t b[4];
      frag_b_nk(b, B, np * 16, kc * 16, lane);
      mma(c[2 * np], a, b[0], b[1]);
      mma(c[2 * np + 1], a, b[2], b[3]);
    }
  }
}
// c += P B, P a 16 x 64 matrix held as accumulators (rounded to bf16: the C layout of two
// adjacent n-tiles is the A layout of one k-chunk), B stored [64 k][64 n].
__device__ __forceinline__ void mm_pb(float (&c)[8][4], const float (&p)[8][4], const Tile& B,
                                      int lane) {
#pragma unroll
  for (int kc = 0; kc < 4; ++kc) {
    uint32_t a[4] = {pack_f2(p[2 * kc][0], p[2 * kc][1]), pack_f2(p[2 * kc][2], p[2 * kc][3]),
                     pack_f2(p[2 * kc + 1][0], p[2 * kc + 1][1]),
                     pack_f2(p[2 * kc + 1][2], p[2 * kc + 1][3])};
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      uint32_t b[4];
      frag_b_kn(b, B, kc * 16, np * 16, lane);
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

__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}
__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

__global__ void __launch_bounds__(kThreads) k_flash_fwd(FlashFwdArgs a) {
  __shared__ __align__(16) Tile sQ, sK, sV;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, tq = (lane & 3) * 2;
  const int bh = blockIdx.y, b = bh / a.H, h = bh % a.H, q0 = blockIdx.x * kTile, T = a.T;
  Frag fq, fk, fv;
  fetch(fq, a.q, b, h, q0, T);
  fetch(fk, a.k, b, h, 0, T);
  fetch(fv, a.v, b, h, 0, T);
  store(sQ, fq, a.bq, h);
  const int rows[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
  float inv2[2];  // scale / t in base 2 (logits times log2 e)
#pragma unroll
  for (int r = 0; r < 2; ++r)
    inv2[r] = rows[r] < T
                  ? a.scale / temp_value(a.temp, a.temp_param, h * a.ctx + rows[r]) * kLog2e
                  : 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f}, sz[2] = {0.f, 0.f};
  float o[8][4];
#pragma unroll
  for (int nt = 0; nt < 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[nt][e] = 0.f;
  const int last = min(q0 + kTile, T) - 1;  // the last key any row of the block sees
  // Every tile processed starts at a key k0 <= q0 <= each row: each row has a valid key in it,
  // so the running maximum is finite after the first tile.
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
    mm_abt(s, sQ, warp * 16, sK, lane);
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e >> 1, j = k0 + nt * 8 + tq + (e & 1);
        const float z = j <= rows[r] ? s[nt][e] * inv2[r] : -INFINITY;
        s[nt][e] = z;
        mx[r] = fmaxf(mx[r], z);
      }
    float alpha[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float mn = fmaxf(m[r], quad_max(mx[r]));
      alpha[r] = exp2f(m[r] - mn);  // 0 on the first tile
      // sum e^(z - m)(z - m) relative to the new maximum
      sz[r] = l[r] > 0.f ? alpha[r] * (sz[r] + (m[r] - mn) * l[r]) : 0.f;
      l[r] *= alpha[r];
      m[r] = mn;
    }
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e >> 1;
        const float z = s[nt][e];
        float p = 0.f;
        if (z != -INFINITY) {
          p = exp2f(z - m[r]);
          l[r] += p;
          sz[r] += p * (z - m[r]);
        }
        s[nt][e] = p;
        o[nt][e] *= alpha[r];
      }
    mm_pb(o, s, sV, lane);
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] = quad_sum(l[r]);
    sz[r] = quad_sum(sz[r]);
  }
  const float il[2] = {1.f / l[0], 1.f / l[1]};
  store_rows(a.o, b, h, rows, T, o, il, lane);
  if (tq != 0) return;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (rows[r] >= T) continue;
    const size_t row = size_t(bh) * T + rows[r];
    const float ent = logf(l[r]) - kLn2 * sz[r] / l[r];
    if (a.lse) a.lse[row] = (m[r] + log2f(l[r])) * kLn2;
    if (a.rowE) a.rowE[row] = ent;
    if (a.theta) {
      const float delta = ent - a.theta[h] * a.lnT;
      const bool on = fabsf(delta) > a.tol;
      a.pen[row] = on ? delta * delta : 0.f;
      a.gE[row] = on ? a.coef * 2.f * delta : 0.f;
    }
  }
}

// Per-row statistics the backward needs (zeros for rows >= T, which are masked anyway).
struct RowStats {
  float inv, lse, D, E, gE;
};
__device__ __forceinline__ RowStats row_stats(const FlashBwdArgs& a, int h, size_t row, int i) {
  RowStats st{0.f, 0.f, 0.f, 0.f, 0.f};
  if (i >= a.f.T) return st;
  const FlashFwdArgs& f = a.f;
  st.inv = f.scale / temp_value(f.temp, f.temp_param, h * f.ctx + i);
  st.lse = f.lse[row];
  st.D = a.Drow[row];
  st.E = f.rowE[row];
  st.gE = a.gE ? a.gE[row] : 0.f;
  return st;
}
// dLoss/dS of one score given its recomputed logit-minus-lse la = ln a and dP.
__device__ __forceinline__ float dz_of(float la, float dp, const RowStats& st) {
  return __expf(la) * (dp - st.D - st.gE * (la + st.E));
}

// Column sums of a block's 64 x 64 accumulator tile (warp w: rows 16w.., the C layout of
// store_rows) -> out[0..64): the block's partial of the qkv bias gradient. Rows >= T hold 0.
// Every thread of the block must call it (two barriers).
__device__ __forceinline__ void tile_colsum(const float (&c)[8][4], float* out, int lane,
                                            int warp) {
  __shared__ float red[kThreads / 32][kD];
  const int g = lane >> 2, tq = (lane & 3) * 2;
#pragma unroll
  for (int nt = 0; nt < 8; ++nt) {
    float v0 = c[nt][0] + c[nt][2], v1 = c[nt][1] + c[nt][3];
#pragma unroll
    for (int o = 4; o < 32; o <<= 1) {
      v0 += __shfl_xor_sync(0xffffffffu, v0, o);
      v1 += __shfl_xor_sync(0xffffffffu, v1, o);
    }
    if (g == 0) {
      red[warp][nt * 8 + tq] = v0;
      red[warp][nt * 8 + tq + 1] = v1;
    }
  }
  __syncthreads();
  if (threadIdx.x < kD) {
    float t = 0.f;
#pragma unroll
    for (int w = 0; w < kThreads / 32; ++w) t += red[w][threadIdx.x];
    out[threadIdx.x] = t;
  }
  __syncthreads();
}
// Where block (tile, b, h)'s partial for which = 0 (q), 1 (k), 2 (v) goes.
__device__ __forceinline__ float* part_of(const FlashBwdArgs& a, int b, int h, int which) {
  return a.dbias_part + (size_t(b) * gridDim.x + blockIdx.x) * 3 * a.f.H * kD +
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
    const bf16* x = reinterpret_cast<const bf16*>(&fdo.u[i]);
    const bf16* y = reinterpret_cast<const bf16*>(&fo.u[i]);
    float acc = 0.f;
#pragma unroll
    for (int k = 0; k < 8; ++k) acc += __bfloat162float(x[k]) * __bfloat162float(y[k]);
    acc += __shfl_xor_sync(0xffffffffu, acc, 1);
    acc += __shfl_xor_sync(0xffffffffu, acc, 2);
    acc += __shfl_xor_sync(0xffffffffu, acc, 4);
    const int r = (threadIdx.x + i * kThreads) >> 3;
    if ((threadIdx.x & 7) == 0 && q0 + r < T) a.Drow[size_t(bh) * T + q0 + r] = acc;
  }
  store(sQ, fq, f.bq, h);
  store(sdO, fdo, nullptr, h);
  __syncthreads();  // D visible to the block (read back through global memory below)
  const int rows[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
  RowStats st[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) st[r] = row_stats(a, h, size_t(bh) * T + rows[r], rows[r]);
  float dq[8][4];
#pragma unroll
  for (int nt = 0; nt < 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) dq[nt][e] = 0.f;
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
    mm_abt(s, sQ, warp * 16, sK, lane);
    mm_abt(dp, sdO, warp * 16, sV, lane);
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e >> 1, j = k0 + nt * 8 + tq + (e & 1);
        float ds = 0.f;
        if (rows[r] < T && j <= rows[r]) {
          const float la = s[nt][e] * st[r].inv - st[r].lse;
          const float dz = dz_of(la, dp[nt][e], st[r]);
          acc_t[r] += dz * la;
          ds = dz * st[r].inv;
        }
        s[nt][e] = ds;
      }
    mm_pb(dq, s, sK, lane);
  }
  const float one[2] = {1.f, 1.f};
  store_rows(a.dq, b, h, rows, T, dq, one, lane);
  if (a.dbias_part) tile_colsum(dq, part_of(a, b, h, 0), lane, warp);
  if (!a.dtemp_row) return;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float at = quad_sum(acc_t[r]);
    if (tq != 0 || rows[r] >= T) continue;
    // dz/dt = -z/t -> dL/dt = -(1/t) sum dz z; chained to the raw parameter
    const float t = temp_value(f.temp, f.temp_param, h * f.ctx + rows[r]);
    const float dt = -at / t;
    a.dtemp_row[size_t(bh) * T + rows[r]] = f.temp_param == TempParam::exp ? dt * t : dt;
  }
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
#pragma unroll
  for (int nt = 0; nt < 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[nt][e] = dv[nt][e] = 0.f;
  for (int q0 = k0; q0 < T; q0 += kTile) {
    __syncthreads();
    store(sQ, fq, f.bq, h);
    store(sdO, fdo, nullptr, h);
    for (int i = threadIdx.x; i < kTile; i += kThreads)
      sst[i] = row_stats(a, h, size_t(bh) * T + q0 + i, q0 + i);
    __syncthreads();
    if (q0 + kTile < T) {
      fetch(fq, f.q, b, h, q0 + kTile, T);
      fetch(fdo, a.dO, b, h, q0 + kTile, T);
    }
    float s[8][4], dp[8][4];
    mm_abt(s, sK, warp * 16, sQ, lane);   // S^T
    mm_abt(dp, sV, warp * 16, sdO, lane);  // dP^T
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e >> 1, ci = nt * 8 + tq + (e & 1), i = q0 + ci;
        float p = 0.f, ds = 0.f;
        if (i < T && keys[r] <= i) {
          const RowStats& st = sst[ci];
          const float la = s[nt][e] * st.inv - st.lse;
          p = __expf(la);
          ds = dz_of(la, dp[nt][e], st) * st.inv;
        }
        s[nt][e] = p;
        dp[nt][e] = ds;
      }
    mm_pb(dv, s, sdO, lane);  // dV += P^T dO
    mm_pb(dk, dp, sQ, lane);  // dK += dS^T Q
  }
  const float one[2] = {1.f, 1.f};
  store_rows(a.dk, b, h, keys, T, dk, one, lane);
  store_rows(a.dv, b, h, keys, T, dv, one, lane);
  if (a.dbias_part) {
    tile_colsum(dk, part_of(a, b, h, 1), lane, warp);
    tile_colsum(dv, part_of(a, b, h, 2), lane, warp);
  }
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
}

}  // namespace

bool flash_attn_supported(int dk) { return dk == kD; }

void flash_attn_forward(const FlashFwdArgs& a, cudaStream_t s) {
  check_fwd(a);
  if (a.T <= 0 || a.B * a.H == 0) return;
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
  dim3 grid(unsigned((a.f.T + kTile - 1) / kTile), unsigned(a.f.B * a.f.H));
  k_flash_bwd_dq<<<grid, kThreads, 0, s>>>(a);
  AERO_LAUNCH_CHECK();
  k_flash_bwd_dkv<<<grid, kThreads, 0, s>>>(a);
  AERO_LAUNCH_CHECK();
}

}  // namespace aero::cuda
