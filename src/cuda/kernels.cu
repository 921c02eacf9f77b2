// GPU layer kernels (see kernels.h for the math of each). Memory-bound kernels use one warp per
// row where a row reduction is needed; reductions are two-stage (block partials, then a fixed
// order sum) so results never depend on scheduling.
#include <cfloat>
#include <cmath>

#include <type_traits>

#include "cuda/kernels.h"
#include "cuda/kernel_util.cuh"

namespace aero::cuda {
namespace {

constexpr int kWarp = 32;

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// The column partials of a two-stage reduction added up: for each column c < C,
// t = sum_k part[k * C + c] (k < nchunk), then out0[c] += t when c < split, else
// out1[c - split] += t. Block (32, kFinRows) over 32 columns: thread row y adds the chunks
// y, y + kFinRows, ... in order, then row 0 adds the kFinRows sums in order (deterministic).
// Was one thread per column looping over all chunks (1024 for the LayerNorm partials): tens of
// microseconds of serial loads per call.
constexpr int kFinRows = 32;
__device__ __forceinline__ void cols_final_block(float* out0, float* out1, int split,
                                                 const float* part, int nchunk, int C, int bx) {
  __shared__ float sm[kFinRows][33];
  const int c = bx * 32 + threadIdx.x;
  float t = 0.f;
  if (c < C)
#pragma unroll 4
    for (int k = threadIdx.y; k < nchunk; k += kFinRows) t += part[size_t(k) * C + c];
  sm[threadIdx.y][threadIdx.x] = t;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float u = 0.f;
#pragma unroll
    for (int y = 0; y < kFinRows; ++y) u += sm[y][threadIdx.x];
    if (c < split)
      out0[c] += u;
    else
      out1[c - split] += u;
  }
}
__global__ void k_cols_final(float* out0, float* out1, int split, const float* part, int nchunk,
                             int C) {
  cols_final_block(out0, out1, split, part, nchunk, C, blockIdx.x);
}
inline void cols_final(float* out0, float* out1, int split, const float* part, int nchunk, int C,
                       cudaStream_t s) {
  k_cols_final<<<(C + 31) / 32, dim3(32, kFinRows), 0, s>>>(out0, out1, split, part, nchunk, C);
}
// One warp per segment: out[seg] = sum_k part[seg * nblk + k] (k < nblk) in double, each lane
// the k = lane, lane + 32, ... in order, then a fixed shuffle tree (deterministic).
__device__ __forceinline__ double warp_sum_partials(const float* part, int nblk) {
  double acc = 0.0;
  for (int k = threadIdx.x; k < nblk; k += kWarp) acc += part[k];
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  return acc;
}

inline unsigned blocks_for(size_t n, int threads, size_t cap = 65535u * 32u) {
  size_t b = (n + threads - 1) / threads;
  if (b > cap) b = cap;
  if (b == 0) b = 1;
  return unsigned(b);
}

// VEC consecutive bf16 values: one 16-byte access when VEC == 8 (callers guarantee alignment).
template <int VEC>
__device__ __forceinline__ void load_bf(const bf16* p, float (&x)[VEC]) {
  if constexpr (VEC == 8) {
    uint4 u = *reinterpret_cast<const uint4*>(p);
    const bf16* b = reinterpret_cast<const bf16*>(&u);
#pragma unroll
    for (int k = 0; k < 8; ++k) x[k] = __bfloat162float(b[k]);
  } else {
#pragma unroll
    for (int k = 0; k < VEC; ++k) x[k] = __bfloat162float(p[k]);
  }
}
template <int VEC>
__device__ __forceinline__ void store_bf(bf16* p, const float (&x)[VEC]) {
  if constexpr (VEC == 8) {
    uint4 u;
    bf16* b = reinterpret_cast<bf16*>(&u);
#pragma unroll
    for (int k = 0; k < 8; ++k) b[k] = __float2bfloat16(x[k]);
    *reinterpret_cast<uint4*>(p) = u;
  } else {
#pragma unroll
    for (int k = 0; k < VEC; ++k) p[k] = __float2bfloat16(x[k]);
  }
}
template <int VEC>
__device__ __forceinline__ void copy_bf(bf16* dst, const bf16* src) {
  if constexpr (VEC == 8) {
    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
  } else {
#pragma unroll
    for (int k = 0; k < VEC; ++k) dst[k] = src[k];
  }
}
// ---------------------------------------------------------------------------------------------
__global__ void k_f32_to_bf16(bf16* out, const float* in, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16(in[i]);
}
__global__ void k_fill(float* out, float v, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    out[i] = v;
}

// ---------------------------------------------------------------------------------------------
__global__ void k_embed_fwd(float* out, const int32_t* tok, const float* wte, const float* wpe,
                            int N, int T, int d) {
  const int n = blockIdx.x;  // one block per row: no 64-bit index division
  const float* e = wte + size_t(tok[n]) * d;
  const float* p = wpe ? wpe + size_t(n % T) * d : nullptr;
  float* o = out + size_t(n) * d;
  for (int c = threadIdx.x; c < d; c += blockDim.x) o[c] = e[c] + (p ? p[c] : 0.f);
}
__global__ void k_embed_bwd_wte(float* dwte, const float* dout, const int32_t* btok,
                                const int32_t* bstart, const int32_t* order, int d) {
  int u = blockIdx.x;
  int beg = bstart[u], end = bstart[u + 1];
  float* row = dwte + size_t(btok[u]) * d;
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float acc = 0.f;
    for (int p = beg; p < end; ++p) acc += dout[size_t(order[p]) * d + c];
    row[c] += acc;
  }
}
__global__ void k_embed_bwd_wpe(float* dwpe, const float* dout, int B, int T, int d) {
  size_t total = size_t(T) * d;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total;
       i += size_t(gridDim.x) * blockDim.x) {
    float acc = 0.f;
    for (int b = 0; b < B; ++b) acc += dout[size_t(b) * T * d + i];
    dwpe[i] += acc;
  }
}

// ---------------------------------------------------------------------------------------------
// One warp per row.
__global__ void k_residual_norm_fwd(float* res, bf16* h, float* mean_out, float* rstd_out,
                                    const float* a, const float* ca, const float* b,
                                    const float* cdiv, const float* bias, const float* ln_w,
                                    const float* ln_b, int N, int d) {
  int row = blockIdx.x * (blockDim.x / kWarp) + threadIdx.x / kWarp;
  int lane = threadIdx.x % kWarp;
  if (row >= N) return;
  const float* ar = a + size_t(row) * d;
  float* rr = res + size_t(row) * d;
  bf16* hr = h + size_t(row) * d;
  float fa = ca ? *ca : 1.f;
  float fb = cdiv ? 1.f / *cdiv : 1.f;
  float sum = 0.f;
  if (b) {
    const float* br = b + size_t(row) * d;
    for (int c = lane; c < d; c += kWarp) {
      float v = fa * ar[c] + (br[c] + (bias ? bias[c] : 0.f)) * fb;
      rr[c] = v;
      if (!ln_w) hr[c] = __float2bfloat16(v);  // no norm: one pass
      sum += v;
    }
  } else {
    for (int c = lane; c < d; c += kWarp) {
      float v = fa * ar[c];
      if (rr != ar || fa != 1.f) rr[c] = v;
      if (!ln_w) hr[c] = __float2bfloat16(v);
      sum += v;
    }
  }
  if (!ln_w) return;
  float mean = warp_sum(sum) / d;
  float var = 0.f;
  for (int c = lane; c < d; c += kWarp) {
    float t = rr[c] - mean;
    var += t * t;
  }
  var = warp_sum(var) / d;
  float rstd = rsqrtf(var + 1e-5f);
  for (int c = lane; c < d; c += kWarp)
    hr[c] = __float2bfloat16((rr[c] - mean) * rstd * ln_w[c] + ln_b[c]);
  if (lane == 0) {
    mean_out[row] = mean;
    rstd_out[row] = rstd;
  }
}

// k_residual_norm_fwd for d = 128 NV: the row in registers (NV float4 per lane), 16-byte
// loads and stores, one read of a and b; same arithmetic as the scalar kernel.
template <int NV>
__global__ void k_residual_norm_fwd_vec(float* res, bf16* h, float* mean_out, float* rstd_out,
                                        const float* a, const float* ca, const float* b,
                                        const float* cdiv, const float* bias, const float* ln_w,
                                        const float* ln_b, int N, int d) {
  const int row = blockIdx.x * (blockDim.x / kWarp) + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (row >= N) return;
  const float4* ar = reinterpret_cast<const float4*>(a + size_t(row) * d);
  float4* rr = reinterpret_cast<float4*>(res + size_t(row) * d);
  uint2* hr = reinterpret_cast<uint2*>(h + size_t(row) * d);
  const float fa = ca ? *ca : 1.f;
  const float fb = cdiv ? 1.f / *cdiv : 1.f;
  float4 v[NV];
  float sum = 0.f;
#pragma unroll
  for (int j = 0; j < NV; ++j) v[j] = ar[lane + kWarp * j];
  if (b) {
    const float4* br = reinterpret_cast<const float4*>(b + size_t(row) * d);
#pragma unroll
    for (int j = 0; j < NV; ++j) {
      float4 bv = br[lane + kWarp * j];
      if (bias) {
        const float4 c = reinterpret_cast<const float4*>(bias)[lane + kWarp * j];
        bv.x += c.x, bv.y += c.y, bv.z += c.z, bv.w += c.w;
      }
      v[j] = make_float4(fa * v[j].x + bv.x * fb, fa * v[j].y + bv.y * fb,
                         fa * v[j].z + bv.z * fb, fa * v[j].w + bv.w * fb);
    }
  } else if (fa != 1.f) {
#pragma unroll
    for (int j = 0; j < NV; ++j)
      v[j] = make_float4(fa * v[j].x, fa * v[j].y, fa * v[j].z, fa * v[j].w);
  }
  const bool write_res = b || fa != 1.f || reinterpret_cast<const float*>(rr) != a + size_t(row) * d;
#pragma unroll
  for (int j = 0; j < NV; ++j) {
    if (write_res) rr[lane + kWarp * j] = v[j];
    sum += v[j].x + v[j].y + v[j].z + v[j].w;
  }
  auto store = [&](int j, float x0, float x1, float x2, float x3) {
    __nv_bfloat162 lo = __floats2bfloat162_rn(x0, x1), hi = __floats2bfloat162_rn(x2, x3);
    uint2 u;
    u.x = *reinterpret_cast<uint32_t*>(&lo);
    u.y = *reinterpret_cast<uint32_t*>(&hi);
    hr[lane + kWarp * j] = u;
  };
  if (!ln_w) {
#pragma unroll
    for (int j = 0; j < NV; ++j) store(j, v[j].x, v[j].y, v[j].z, v[j].w);
    return;
  }
  const float mean = warp_sum(sum) / d;
  float var = 0.f;
#pragma unroll
  for (int j = 0; j < NV; ++j) {
    const float x0 = v[j].x - mean, x1 = v[j].y - mean, x2 = v[j].z - mean, x3 = v[j].w - mean;
    var += x0 * x0 + x1 * x1 + x2 * x2 + x3 * x3;
  }
  const float rstd = rsqrtf(warp_sum(var) / d + 1e-5f);
#pragma unroll
  for (int j = 0; j < NV; ++j) {
    const float4 w = reinterpret_cast<const float4*>(ln_w)[lane + kWarp * j];
    const float4 c = reinterpret_cast<const float4*>(ln_b)[lane + kWarp * j];
    store(j, (v[j].x - mean) * rstd * w.x + c.x, (v[j].y - mean) * rstd * w.y + c.y,
          (v[j].z - mean) * rstd * w.z + c.z, (v[j].w - mean) * rstd * w.w + c.w);
  }
  if (lane == 0) {
    mean_out[row] = mean;
    rstd_out[row] = rstd;
  }
}

// dst[i] += float(src[i])
__global__ void k_add_bf16_f32(float* dst, const bf16* src, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    dst[i] += __bfloat162float(src[i]);
}

constexpr int kNormWarps = 4;
constexpr int kNormBlocks = 1024;

// Each warp handles rows, keeping its dln partials in its own shared-memory slot; the block's
// warps are then added in order and written to scratch[blockIdx][2d].
__global__ void k_norm_bwd(float* dres, const float* dh, const float* x, const float* mean_in,
                           const float* rstd_in, const float* w, float* scratch, int N, int d) {
  extern __shared__ float sm[];  // [kNormWarps][2d]
  int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  float* mine = sm + size_t(warp) * 2 * d;
  for (int c = lane; c < 2 * d; c += kWarp) mine[c] = 0.f;
  for (int row = blockIdx.x * kNormWarps + warp; row < N; row += gridDim.x * kNormWarps) {
    const float* dr = dh + size_t(row) * d;
    const float* xr = x + size_t(row) * d;
    float* out = dres + size_t(row) * d;
    float mean = mean_in[row], rstd = rstd_in[row];
    float s1 = 0.f, s2 = 0.f;
    for (int c = lane; c < d; c += kWarp) {
      float xn = (xr[c] - mean) * rstd;
      float g = dr[c] * w[c];
      s1 += g;
      s2 += g * xn;
      mine[c] += dr[c] * xn;
      mine[d + c] += dr[c];
    }
    s1 = warp_sum(s1) / d;
    s2 = warp_sum(s2) / d;
    for (int c = lane; c < d; c += kWarp) {
      float xn = (xr[c] - mean) * rstd;
      float g = dr[c] * w[c];
      out[c] += rstd * (g - s1 - xn * s2);
    }
  }
  __syncthreads();
  for (int c = threadIdx.x; c < 2 * d; c += blockDim.x) {
    float acc = 0.f;
    for (int wi = 0; wi < kNormWarps; ++wi) acc += sm[size_t(wi) * 2 * d + c];
    scratch[size_t(blockIdx.x) * 2 * d + c] = acc;
  }
}
// d = 128 NV: each lane keeps its 4 NV columns of the row (dh, x, dres) and of the dln partials
// in registers, so the row is read from memory once (16-byte accesses); same partials layout
// and fixed summation order as k_norm_bwd.
template <int NV>
__global__ void k_norm_bwd_vec(float* dres, const float* dh, const float* x,
                               const float* mean_in, const float* rstd_in, const float* w,
                               float* scratch, int N, int d) {
  extern __shared__ float sm[];  // [kNormWarps][2d]
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  float4 wv[NV], accw[NV], accb[NV];
#pragma unroll
  for (int j = 0; j < NV; ++j) {
    wv[j] = reinterpret_cast<const float4*>(w)[lane + kWarp * j];
    accw[j] = accb[j] = make_float4(0.f, 0.f, 0.f, 0.f);
  }
  for (int row = blockIdx.x * kNormWarps + warp; row < N; row += gridDim.x * kNormWarps) {
    const float4* dr = reinterpret_cast<const float4*>(dh + size_t(row) * d);
    const float4* xr = reinterpret_cast<const float4*>(x + size_t(row) * d);
    float4* out = reinterpret_cast<float4*>(dres + size_t(row) * d);
    const float mean = mean_in[row], rstd = rstd_in[row];
    float4 g[NV], xn[NV], o[NV];
    float s1 = 0.f, s2 = 0.f;
#pragma unroll
    for (int j = 0; j < NV; ++j) {
      const float4 dv = dr[lane + kWarp * j], xv = xr[lane + kWarp * j];
      o[j] = out[lane + kWarp * j];
      xn[j] = make_float4((xv.x - mean) * rstd, (xv.y - mean) * rstd, (xv.z - mean) * rstd,
                          (xv.w - mean) * rstd);
      g[j] = make_float4(dv.x * wv[j].x, dv.y * wv[j].y, dv.z * wv[j].z, dv.w * wv[j].w);
      s1 += g[j].x + g[j].y + g[j].z + g[j].w;
      s2 += g[j].x * xn[j].x + g[j].y * xn[j].y + g[j].z * xn[j].z + g[j].w * xn[j].w;
      accw[j].x += dv.x * xn[j].x;
      accw[j].y += dv.y * xn[j].y;
      accw[j].z += dv.z * xn[j].z;
      accw[j].w += dv.w * xn[j].w;
      accb[j].x += dv.x;
      accb[j].y += dv.y;
      accb[j].z += dv.z;
      accb[j].w += dv.w;
    }
    s1 = warp_sum(s1) / d;
    s2 = warp_sum(s2) / d;
#pragma unroll
    for (int j = 0; j < NV; ++j) {
      o[j].x += rstd * (g[j].x - s1 - xn[j].x * s2);
      o[j].y += rstd * (g[j].y - s1 - xn[j].y * s2);
      o[j].z += rstd * (g[j].z - s1 - xn[j].z * s2);
      o[j].w += rstd * (g[j].w - s1 - xn[j].w * s2);
      out[lane + kWarp * j] = o[j];
    }
  }
  float4* mine = reinterpret_cast<float4*>(sm + size_t(warp) * 2 * d);
#pragma unroll
  for (int j = 0; j < NV; ++j) {
    mine[lane + kWarp * j] = accw[j];
    mine[d / 4 + lane + kWarp * j] = accb[j];
  }
  __syncthreads();
  for (int c = threadIdx.x; c < 2 * d; c += blockDim.x) {
    float acc = 0.f;
    for (int wi = 0; wi < kNormWarps; ++wi) acc += sm[size_t(wi) * 2 * d + c];
    scratch[size_t(blockIdx.x) * 2 * d + c] = acc;
  }
}
__global__ void k_add_f32(float* dst, const float* src, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    dst[i] += src[i];
}

// ---------------------------------------------------------------------------------------------
// One block per (b, t) row; VEC columns per step (VEC divides dk, so a step never straddles heads).
template <int VEC>
__global__ void k_qkv_split(bf16* q, bf16* k, bf16* v, const bf16* qkv, const float* bias, int T,
                            int H, int dk) {
  const int bt = blockIdx.x, b = bt / T, t = bt % T, d = H * dk;
  const bf16* src = qkv + size_t(bt) * 3 * d;
  for (int col = threadIdx.x * VEC; col < 3 * d; col += blockDim.x * VEC) {
    int which = col / d, hc = col - which * d, hh = hc / dk, c = hc - hh * dk;
    bf16* dst = (which == 0 ? q : (which == 1 ? k : v)) + ((size_t(b) * H + hh) * T + t) * dk + c;
    if (bias) {
      float x[VEC];
      load_bf<VEC>(src + col, x);
#pragma unroll
      for (int e = 0; e < VEC; ++e) x[e] += bias[col + e];
      store_bf<VEC>(dst, x);
    } else {
      copy_bf<VEC>(dst, src + col);
    }
  }
}
template <int VEC>
__global__ void k_qkv_merge(bf16* dqkv, const bf16* dq, const bf16* dkk, const bf16* dv, int T,
                            int H, int dk) {
  const int bt = blockIdx.x, b = bt / T, t = bt % T, d = H * dk;
  bf16* dst = dqkv + size_t(bt) * 3 * d;
  for (int col = threadIdx.x * VEC; col < 3 * d; col += blockDim.x * VEC) {
    int which = col / d, hc = col - which * d, hh = hc / dk, c = hc - hh * dk;
    const bf16* src = (which == 0 ? dq : (which == 1 ? dkk : dv)) + ((size_t(b) * H + hh) * T + t) * dk + c;
    copy_bf<VEC>(dst + col, src);
  }
}
template <bool kMerge, int VEC>
__global__ void k_heads(bf16* out, const bf16* in, int T, int H, int dk) {
  const int bt = blockIdx.x, b = bt / T, t = bt % T, d = H * dk;
  for (int col = threadIdx.x * VEC; col < d; col += blockDim.x * VEC) {
    int hh = col / dk, c = col - hh * dk;
    size_t flat = size_t(bt) * d + col;                       // [B,T,d]
    size_t heads = ((size_t(b) * H + hh) * T + t) * dk + c;   // [B,H,T,dk]
    if (kMerge)
      copy_bf<VEC>(out + flat, in + heads);
    else
      copy_bf<VEC>(out + heads, in + flat);
  }
}

// ---------------------------------------------------------------------------------------------
// One warp per row (b, h, i). Three passes over the row (it stays in L1): max, sum, write.
__global__ void k_attn_softmax_fwd(AttnSoftmaxArgs a) {
  size_t rows = size_t(a.B) * a.H * a.T;
  size_t row = size_t(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp;
  int lane = threadIdx.x % kWarp;
  if (row >= rows) return;
  int i = int(row % a.T);
  int hh = int((row / a.T) % a.H);
  bf16* p = a.P + row * a.T;
  float t = temp_value(a.temp, a.temp_param, hh * a.ctx + i);
  float inv = a.scale / t;
  float mx = -FLT_MAX;
  for (int j = lane; j <= i; j += kWarp) mx = fmaxf(mx, __bfloat162float(p[j]) * inv);
  mx = warp_max(mx);
  float sum = 0.f;
  for (int j = lane; j <= i; j += kWarp) sum += expf(__bfloat162float(p[j]) * inv - mx);
  sum = warp_sum(sum);
  float rs = 1.f / sum;
  float ent = 0.f;
  for (int j = lane; j < a.T; j += kWarp) {
    float pr = 0.f;
    if (j <= i) {
      pr = expf(__bfloat162float(p[j]) * inv - mx) * rs;
      ent -= pr * logf(pr + 1e-9f);
    }
    p[j] = __float2bfloat16(pr);
  }
  ent = warp_sum(ent);
  if (lane == 0) {
    if (a.rowE) a.rowE[row] = ent;
    if (a.theta) {
      float delta = ent - a.theta[hh] * a.lnT;
      bool on = fabsf(delta) > a.tol;
      a.pen[row] = on ? delta * delta : 0.f;
      a.gE[row] = on ? a.coef * 2.f * delta : 0.f;
    }
  }
}

__global__ void k_attn_softmax_bwd(AttnSoftmaxBwdArgs a) {
  size_t rows = size_t(a.B) * a.H * a.T;
  size_t row = size_t(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp;
  int lane = threadIdx.x % kWarp;
  if (row >= rows) return;
  int i = int(row % a.T);
  int hh = int((row / a.T) % a.H);
  bf16* dp = a.dP + row * a.T;
  const bf16* p = a.P + row * a.T;
  float t = temp_value(a.temp, a.temp_param, hh * a.ctx + i);
  float inv = a.scale / t;
  float ge = a.gE ? a.gE[row] : 0.f;
  // dE/da = -(ln(a + 1e-9) + a / (a + 1e-9))
  // Pass 1: sum a, sum a g, sum a ln a over the stored (bf16) row. Dividing by sum a makes
  // sum_j dz_j = 0 hold for the rounded probabilities too, and centring ln a on its mean keeps
  // the temperature gradient sum_j dz_j ln a_j free of cancellation.
  float psum = 0.f, dot = 0.f, plog = 0.f;
  const bool want_t = a.dtemp_row != nullptr;
  for (int j = lane; j <= i; j += kWarp) {
    float pj = __bfloat162float(p[j]);
    float g = __bfloat162float(dp[j]);
    if (ge != 0.f) g -= ge * (logf(pj + 1e-9f) + pj / (pj + 1e-9f));
    psum += pj;
    dot += pj * g;
    if (want_t && pj > 0.f) plog += pj * logf(pj);
  }
  psum = warp_sum(psum);
  dot = warp_sum(dot) / psum;
  if (want_t) plog = warp_sum(plog) / psum;
  float acc_t = 0.f;
  for (int j = lane; j < a.T; j += kWarp) {
    float ds = 0.f;
    if (j <= i) {
      float pj = __bfloat162float(p[j]);
      float g = __bfloat162float(dp[j]);
      if (ge != 0.f) g -= ge * (logf(pj + 1e-9f) + pj / (pj + 1e-9f));
      float dz = pj * (g - dot);
      ds = dz * inv;
      // sum_j dz_j z_j = sum_j dz_j (ln a_j - c) for any c, since sum_j dz_j = 0 and
      // z_j = ln a_j + lse
      if (want_t && pj > 0.f) acc_t += dz * (logf(pj) - plog);
    }
    dp[j] = __float2bfloat16(ds);
  }
  if (want_t) {
    acc_t = warp_sum(acc_t);
    if (lane == 0) {
      // dz/dt = -z/t  ->  dL/dt = -(1/t) sum dz z ; chain to the raw parameter
      float dt = -acc_t / t;
      a.dtemp_row[row] = a.temp_param == TempParam::exp ? dt * t : dt;
    }
  }
}

// out[h*ctx+i] (+)= sum_b row[(b*H+h)*T+i]: a block of 8 warps per 32 positions of the H*T,
// warp w summing the batches b = w (mod 8), the 8 partials added in a fixed order (so the
// result does not depend on scheduling; one thread per position summing all B in sequence
// left the kernel latency-bound on a few multiprocessors).
constexpr int kTempGroups = 8;
template <bool kAdd>
__global__ void k_temp_grad(float* out, const float* row, int B, int H, int T, int ctx) {
  __shared__ float part[kTempGroups][kWarp];
  const int lane = threadIdx.x % kWarp, grp = threadIdx.x / kWarp;
  const int idx = blockIdx.x * kWarp + lane, hh = idx / T, i = idx % T;
  float acc = 0.f;
  if (idx < H * T)
#pragma unroll 4
    for (int b = grp; b < B; b += kTempGroups) acc += row[(size_t(b) * H + hh) * T + i];
  part[grp][lane] = acc;
  __syncthreads();
  if (grp != 0 || idx >= H * T) return;
  float t = 0.f;
#pragma unroll
  for (int g = 0; g < kTempGroups; ++g) t += part[g][lane];
  if (kAdd)
    out[hh * ctx + i] += t;
  else
    out[hh * ctx + i] = t;
}
// Stage 1 sums over the batch (like k_temp_grad), stage 2 over query positions.
__global__ void k_theta_grad(float* dtheta, const float* perpos, int T, float factor) {
  __shared__ float sm[256];
  int hh = blockIdx.x;
  float acc = 0.f;
  for (int i = threadIdx.x; i < T; i += blockDim.x) acc += perpos[size_t(hh) * T + i];
  sm[threadIdx.x] = acc;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) sm[threadIdx.x] += sm[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) dtheta[hh] += factor * sm[0];
}

// ---------------------------------------------------------------------------------------------
__device__ __forceinline__ float bf16_round(float x) {
  return __bfloat162float(__float2bfloat16(x));
}
__device__ __forceinline__ float act_f(float x, Act act, float slope) {
  switch (act) {
    case Act::gelu: {
      const float k0 = 0.7978845608028654f;
      return 0.5f * x * (1.f + tanhf(k0 * (x + 0.044715f * x * x * x)));
    }
    case Act::relu: return x > 0.f ? x : 0.f;
    case Act::leaky_relu: return x > 0.f ? x : slope * x;
    case Act::gelu_exact: return 0.5f * x * (1.f + erff(x * 0.7071067811865476f));
    default: return x;
  }
}
__device__ __forceinline__ float act_df(float x, Act act, float slope) {
  switch (act) {
    case Act::gelu: {
      const float k0 = 0.7978845608028654f;
      float u = k0 * (x + 0.044715f * x * x * x);
      float th = tanhf(u);
      return 0.5f * (1.f + th) + 0.5f * x * (1.f - th * th) * k0 * (1.f + 3.f * 0.044715f * x * x);
    }
    case Act::relu: return x > 0.f ? 1.f : 0.f;
    case Act::leaky_relu: return x > 0.f ? 1.f : slope;
    case Act::gelu_exact:  // Phi(x) + x phi(x)
      return 0.5f * (1.f + erff(x * 0.7071067811865476f)) +
             x * expf(-0.5f * x * x) * 0.3989422804014327f;
    default: return 1.f;
  }
}
template <int VEC>
__global__ void k_bias_act_fwd(bf16* pre, bf16* out, const float* bias, int F, Act act,
                               float slope, const float* slope_dev) {
  if (slope_dev) slope = *slope_dev;
  const size_t base = size_t(blockIdx.x) * F;  // one block per row
  for (int c = threadIdx.x * VEC; c < F; c += blockDim.x * VEC) {
    float x[VEC], y[VEC];
    load_bf<VEC>(pre + base + c, x);
    if (bias) {
#pragma unroll
      for (int e = 0; e < VEC; ++e) x[e] = bf16_round(x[e] + bias[c + e]);
      store_bf<VEC>(pre + base + c, x);  // backward sees exactly the stored pre-activation
    }
#pragma unroll
    for (int e = 0; e < VEC; ++e) y[e] = act_f(x[e], act, slope);
    store_bf<VEC>(out + base + c, y);
  }
}
template <int VEC>
__global__ void k_act_bwd(bf16* dpre, const bf16* dout, const bf16* pre, int F, Act act,
                          float slope, const float* slope_dev) {
  if (slope_dev) slope = *slope_dev;
  const size_t base = size_t(blockIdx.x) * F;
  for (int c = threadIdx.x * VEC; c < F; c += blockDim.x * VEC) {
    float g[VEC], x[VEC];
    load_bf<VEC>(dout + base + c, g);
    load_bf<VEC>(pre + base + c, x);
#pragma unroll
    for (int e = 0; e < VEC; ++e) g[e] *= act_df(x[e], act, slope);
    store_bf<VEC>(dpre + base + c, g);
  }
}

// Deterministic block sum (fixed tree over blockDim.x <= 1024 threads); every thread gets it.
__device__ float block_sum(float v, float* sm) {
  sm[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) sm[threadIdx.x] += sm[threadIdx.x + s];
    __syncthreads();
  }
  float r = sm[0];
  __syncthreads();
  return r;
}

// Learnable leaky ReLU slope gradient partials: sum dout * min(pre, 0).
__global__ void k_slope_partial(float* scratch, const bf16* dout, const bf16* pre, size_t n) {
  __shared__ float sm[256];
  float acc = 0.f;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    float x = __bfloat162float(pre[i]);
    if (x < 0.f) acc += __bfloat162float(dout[i]) * x;
  }
  float t = block_sum(acc, sm);
  if (threadIdx.x == 0) scratch[blockIdx.x] = t;
}
__global__ void k_add_sum(float* out, const float* scratch, int nblk) {
  if (threadIdx.x != 0) return;
  double acc = 0.0;
  for (int i = 0; i < nblk; ++i) acc += scratch[i];
  *out += float(acc);
}

// One block per (bh, t) row pair of q and k.
__global__ void k_rotary(bf16* q, bf16* k, const float* cs, const float* sn, int T, int dk,
                         int half, float sgn) {
  const size_t row = blockIdx.x;  // (bh * T + t)
  const int t = int(row % T);
  for (int f = threadIdx.x; f < 2 * half; f += blockDim.x) {
    const int which = f / half, ff = f - which * half;
    bf16* x = (which == 0 ? q : k) + row * dk;
    float c = cs[size_t(t) * half + ff], si = sgn * sn[size_t(t) * half + ff];
    float x1 = __bfloat162float(x[ff]), x2 = __bfloat162float(x[ff + half]);
    x[ff] = __float2bfloat16(x1 * c - x2 * si);
    x[ff + half] = __float2bfloat16(x2 * c + x1 * si);
  }
}

// Weight norm: one block per row.
__global__ void k_wn_fwd(bf16* w_eff, float* norms, const float* g, const float* v, int I, int r0,
                         int r1) {
  __shared__ float sm[256];
  const int o = blockIdx.x;
  const float* vr = v + size_t(o) * I;
  bf16* wr = w_eff + size_t(o) * I;
  if (o < r0 || o >= r1) {
    for (int i = threadIdx.x; i < I; i += blockDim.x) wr[i] = __float2bfloat16(vr[i]);
    if (threadIdx.x == 0) norms[o] = 0.f;
    return;
  }
  float ss = 0.f;
  for (int i = threadIdx.x; i < I; i += blockDim.x) ss += vr[i] * vr[i];
  float nrm = sqrtf(block_sum(ss, sm));
  float sc = g[o] / nrm;
  for (int i = threadIdx.x; i < I; i += blockDim.x) wr[i] = __float2bfloat16(sc * vr[i]);
  if (threadIdx.x == 0) norms[o] = nrm;
}
__global__ void k_wn_bwd(float* dg, float* dv, const float* G, const float* g, const float* v,
                         const float* norms, int I, int r0, int r1) {
  __shared__ float sm[256];
  const int o = blockIdx.x;
  const float* vr = v + size_t(o) * I;
  const float* Gr = G + size_t(o) * I;
  float* dvr = dv + size_t(o) * I;
  if (o < r0 || o >= r1) {
    for (int i = threadIdx.x; i < I; i += blockDim.x) dvr[i] += Gr[i];
    return;
  }
  float gv = 0.f;
  for (int i = threadIdx.x; i < I; i += blockDim.x) gv += Gr[i] * vr[i];
  gv = block_sum(gv, sm);
  const float nrm = norms[o];
  if (threadIdx.x == 0) dg[o] += gv / nrm;
  const float sc = g[o] / nrm, c = gv / (nrm * nrm);
  for (int i = threadIdx.x; i < I; i += blockDim.x) dvr[i] += sc * (Gr[i] - c * vr[i]);
}

// Spectral norm power iteration, one block (1024 threads) for the whole sub-matrix: small
// work once per step; sums in a fixed order.
__global__ void k_sn_power(float* u, float* v, float* sigma, float* wv, const float* W, int h,
                           int I, int iterate) {
  __shared__ float sm[1024];
  // v = normalize(W^T u)
  float ss = 0.f;
  for (int i = threadIdx.x; i < I; i += blockDim.x) {
    float acc = 0.f;
    for (int r = 0; r < h; ++r) acc += W[size_t(r) * I + i] * u[r];
    v[i] = acc;
    ss += acc * acc;
  }
  float inv = 1.f / fmaxf(sqrtf(block_sum(ss, sm)), 1e-12f);
  for (int i = threadIdx.x; i < I; i += blockDim.x) v[i] *= inv;
  __syncthreads();
  // wv = W v: one warp per row
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, nw = blockDim.x / kWarp;
  for (int r = warp; r < h; r += nw) {
    float acc = 0.f;
    for (int i = lane; i < I; i += kWarp) acc += W[size_t(r) * I + i] * v[i];
    acc = warp_sum(acc);
    if (lane == 0) wv[r] = acc;
  }
  __syncthreads();
  if (iterate) {
    float s2 = 0.f;
    for (int r = threadIdx.x; r < h; r += blockDim.x) s2 += wv[r] * wv[r];
    float iu = 1.f / fmaxf(sqrtf(block_sum(s2, sm)), 1e-12f);
    for (int r = threadIdx.x; r < h; r += blockDim.x) u[r] = wv[r] * iu;
    __syncthreads();
  }
  float sg = 0.f;
  for (int r = threadIdx.x; r < h; r += blockDim.x) sg += u[r] * wv[r];
  sg = block_sum(sg, sm);
  if (threadIdx.x == 0) *sigma = sg;
}
__global__ void k_scale_to_bf16(bf16* out, const float* in, const float* div, size_t n) {
  const float inv = 1.f / *div;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16(in[i] * inv);
}
__global__ void k_dot_partial(float* scratch, const float* a, const float* b, size_t n) {
  __shared__ float sm[256];
  float acc = 0.f;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    acc += a[i] * b[i];
  float t = block_sum(acc, sm);
  if (threadIdx.x == 0) scratch[1 + blockIdx.x] = t;
}
__global__ void k_sum_to0(float* scratch, int nblk) {
  if (threadIdx.x != 0) return;
  double acc = 0.0;
  for (int i = 0; i < nblk; ++i) acc += scratch[1 + i];
  scratch[0] = float(acc);
}
__global__ void k_sn_bwd(float* dW, const float* G, const float* u, const float* v,
                         const float* sigma, const float* gw, int I, size_t n) {
  const float inv = 1.f / *sigma, c = *gw / (*sigma * *sigma);
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    size_t r = i / I, col = i - r * I;
    dW[i] += G[i] * inv - c * u[r] * v[col];
  }
}

constexpr int kScaleBlocks = 512;
__global__ void k_ffn_scale_bwd(bf16* dm, float* dres, const float* xhat, const float* m,
                                const float* bm, const float* alpha, const float* beta,
                                float* scratch, int N, int d, bool scale_res) {
  __shared__ float s_a[256], s_b[256];
  float al = *alpha, be = *beta;
  float ia = 1.f / al;
  float acc_a = 0.f, acc_b = 0.f;
  for (int row = blockIdx.x; row < N; row += gridDim.x)
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
      size_t i = size_t(row) * d + c;
      float g = dres[i];
      float mm = m[i] + (bm ? bm[c] : 0.f);
      acc_b += g * xhat[i];
      acc_a += g * mm;
      dm[i] = __float2bfloat16(g * ia);
      if (scale_res) dres[i] = g * be;
    }
  s_a[threadIdx.x] = acc_a;
  s_b[threadIdx.x] = acc_b;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      s_a[threadIdx.x] += s_a[threadIdx.x + s];
      s_b[threadIdx.x] += s_b[threadIdx.x + s];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    scratch[2 * blockIdx.x] = -s_a[0] * ia * ia;
    scratch[2 * blockIdx.x + 1] = s_b[0];
  }
}
// dalpha / dbeta from the blocks' partials ab[2 * k], ab[2 * k + 1] (k < nab): the last block
// of the grid, as a 2-column sum; the blocks before it (if any) add the column partials of dm
// to dbias (cols_final_block over d columns).
__global__ void k_ffn_scale_final(float* dalpha, float* dbeta, const float* ab, int nab,
                                  float* dbias, const float* cols, int nchunk, int d) {
  if (blockIdx.x + 1 == gridDim.x)
    cols_final_block(dalpha, dbeta, 1, ab, nab, 2, 0);
  else
    cols_final_block(dbias, nullptr, d, cols, nchunk, d, blockIdx.x);
}

// ---------------------------------------------------------------------------------------------
constexpr int kColRows = 256;  // rows per chunk
__global__ void k_colsum_partial(float* scratch, const bf16* in, int N, int C) {
  __shared__ float sm[8][33];
  int c = blockIdx.x * 32 + threadIdx.x;
  int r0 = blockIdx.y * kColRows;
  int r1 = min(N, r0 + kColRows);
  float acc = 0.f;
  if (c < C)
    for (int r = r0 + threadIdx.y; r < r1; r += 8) acc += __bfloat162float(in[size_t(r) * C + c]);
  sm[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float s = 0.f;
    for (int y = 0; y < 8; ++y) s += sm[y][threadIdx.x];
    scratch[size_t(blockIdx.y) * C + c] = s;
  }
}
// C % 8 == 0: each thread sums 8 adjacent columns with 16-byte loads; block (32, 8) covers
// 256 columns x kColRows rows.
// The block's column partials (block (32, 8), 8 columns per thread, acc = this thread's sums)
// -> scratch[blockIdx.y][C], added over threadIdx.y in a fixed order. All threads call it.
__device__ void colsum8_block_out(const float (&acc)[8], float* scratch, int C) {
  __shared__ float sm[8][32 * 8 + 1];
#pragma unroll
  for (int e = 0; e < 8; ++e) sm[threadIdx.y][threadIdx.x * 8 + e] = acc[e];
  __syncthreads();
  const int k = threadIdx.y * 32 + threadIdx.x, c = blockIdx.x * 256 + k;
  if (c < C) {
    float t = 0.f;
    for (int y = 0; y < 8; ++y) t += sm[y][k];
    scratch[size_t(blockIdx.y) * C + c] = t;
  }
}
__device__ __forceinline__ void load_f8(const float* p, float (&v)[8]) {
  const float4 u = *reinterpret_cast<const float4*>(p), w = *reinterpret_cast<const float4*>(p + 4);
  v[0] = u.x, v[1] = u.y, v[2] = u.z, v[3] = u.w, v[4] = w.x, v[5] = w.y, v[6] = w.z, v[7] = w.w;
}
__global__ void k_colsum_partial8(float* scratch, const bf16* in, int N, int C) {
  int c0 = (blockIdx.x * 32 + threadIdx.x) * 8;
  int r0 = blockIdx.y * kColRows;
  int r1 = min(N, r0 + kColRows);
  float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  if (c0 < C)
    for (int r = r0 + threadIdx.y; r < r1; r += 8) {
      float x[8];
      load_bf<8>(in + size_t(r) * C + c0, x);
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[e] += x[e];
    }
  colsum8_block_out(acc, scratch, C);
}
// A producer pass fused with the column sums of what it writes (block layout and partials as
// k_colsum_partial8; the sums are of the fp32 values before rounding to bf16). C % 8 == 0,
// 16-byte aligned rows. MODE 0: out = dout * act'(pre) (act_backward); MODE 1: out = bf16(x).
template <int MODE>
__global__ void k_fused_colsum8(float* scratch, bf16* out, const bf16* dout, const bf16* pre,
                                const float* x32, int N, int C, Act act, float slope,
                                const float* slope_dev) {
  if (MODE == 0 && slope_dev) slope = *slope_dev;
  const int c0 = (blockIdx.x * 32 + threadIdx.x) * 8;
  const int r0 = blockIdx.y * kColRows, r1 = min(N, r0 + kColRows);
  float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  if (c0 < C)
#pragma unroll 2
    for (int r = r0 + threadIdx.y; r < r1; r += 8) {
      const size_t o = size_t(r) * C + c0;
      float x[8];
      if (MODE == 0) {
        float p[8];
        load_bf<8>(dout + o, x);
        load_bf<8>(pre + o, p);
#pragma unroll
        for (int e = 0; e < 8; ++e) x[e] *= act_df(p[e], act, slope);
      } else {
        load_f8(x32 + o, x);
      }
      store_bf<8>(out + o, x);
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[e] += x[e];
    }
  colsum8_block_out(acc, scratch, C);
}
// k_ffn_scale_bwd for d % 8 == 0 with 16-byte aligned rows, laid out as k_colsum_partial8
// (block (32, 8) over 256 columns x kColRows rows, 8 columns per thread), with the column
// sums of dm (the FFN output bias's gradient) in the same pass: cols[chunk][d] gets the
// block's column partials, ab[2 * block] its dalpha / dbeta partials.
__global__ void k_ffn_scale_bwd8(bf16* dm, float* dres, const float* xhat, const float* m,
                                 const float* bm, const float* alpha, const float* beta,
                                 float* cols, float* ab, int N, int d, bool scale_res) {
  __shared__ float sa[256], sb[256];
  const float ia = 1.f / *alpha, be = *beta;
  const int c0 = (blockIdx.x * 32 + threadIdx.x) * 8;
  const int r0 = blockIdx.y * kColRows, r1 = min(N, r0 + kColRows);
  float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f}, acc_a = 0.f, acc_b = 0.f;
  if (c0 < d) {
    float bv[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) bv[e] = bm ? bm[c0 + e] : 0.f;
#pragma unroll 2
    for (int r = r0 + threadIdx.y; r < r1; r += 8) {
      const size_t o = size_t(r) * d + c0;
      float g[8], x[8], mm[8], q[8];
      load_f8(dres + o, g);
      load_f8(xhat + o, x);
      load_f8(m + o, mm);
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        acc_b += g[e] * x[e];
        acc_a += g[e] * (mm[e] + bv[e]);
        q[e] = g[e] * ia;
        acc[e] += q[e];
        g[e] *= be;
      }
      store_bf<8>(dm + o, q);
      if (scale_res) {
        *reinterpret_cast<float4*>(dres + o) = make_float4(g[0], g[1], g[2], g[3]);
        *reinterpret_cast<float4*>(dres + o + 4) = make_float4(g[4], g[5], g[6], g[7]);
      }
    }
  }
  colsum8_block_out(acc, cols, d);
  const int tid = threadIdx.y * 32 + threadIdx.x;
  sa[tid] = acc_a;
  sb[tid] = acc_b;
  __syncthreads();
  for (int st = 128; st > 0; st >>= 1) {
    if (tid < st) {
      sa[tid] += sa[tid + st];
      sb[tid] += sb[tid + st];
    }
    __syncthreads();
  }
  if (tid == 0) {
    const size_t blk = size_t(blockIdx.y) * gridDim.x + blockIdx.x;
    ab[2 * blk] = -sa[0] * ia * ia;
    ab[2 * blk + 1] = sb[0];
  }
}
constexpr int kSumPartials = 256;
template <bool kSquare>
__global__ void k_sum_partial(float* scratch, const float* g, size_t n) {
  __shared__ float sm[256];
  float acc = 0.f;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    acc += kSquare ? g[i] * g[i] : g[i];
  sm[threadIdx.x] = acc;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) sm[threadIdx.x] += sm[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) scratch[blockIdx.x] = sm[0];
}
// out[blockIdx.x] = the sum of segment blockIdx.x's nblk partials (one warp per segment)
__global__ void k_sum_final(float* out, const float* scratch, int nblk) {
  const double acc = warp_sum_partials(scratch + size_t(blockIdx.x) * nblk, nblk);
  if (threadIdx.x == 0) out[blockIdx.x] = float(acc);
}
// Up to kSumSegs arrays of n floats each: grid (kSumPartials, count), partials of array j in
// scratch[j * kSumPartials ..] (the same partials as k_sum_partial<false> on each alone).
constexpr int kSumSegs = 16;
struct SumSegs {
  const float* p[kSumSegs];
};
__global__ void k_sum_partial_segs(float* scratch, SumSegs in, size_t n) {
  __shared__ float sm[256];
  const float* g = in.p[blockIdx.y];
  float acc = 0.f;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    acc += g[i];
  sm[threadIdx.x] = acc;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) sm[threadIdx.x] += sm[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) scratch[size_t(blockIdx.y) * gridDim.x + blockIdx.x] = sm[0];
}
constexpr int kNormPartials = 1024;
__global__ void k_norm_final(float* norm_out, float* scale_out, const float* scratch, int nblk,
                             float max_norm) {
  const double sq = warp_sum_partials(scratch, nblk);
  if (threadIdx.x != 0) return;
  float nrm = float(sqrt(sq));
  *norm_out = nrm;
  if (scale_out) *scale_out = (max_norm > 0.f && nrm > max_norm) ? max_norm / (nrm + 1e-6f) : 1.f;
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy: one block per row; online max/sum per thread, combined across the block.
// The running (max m, sum s of e^(x - m)) of each thread combined over the block (blockDim.x a
// multiple of 32); returns the row's log-sum-exp to every thread (two barriers).
__device__ float block_lse(float m, float s) {
  __shared__ float s_m[32], s_s[32];
  __shared__ float s_lse;
  for (int o = 16; o > 0; o >>= 1) {
    float m2 = __shfl_xor_sync(0xffffffffu, m, o);
    float s2 = __shfl_xor_sync(0xffffffffu, s, o);
    float mn = fmaxf(m, m2);
    s = s * expf(m - mn) + s2 * expf(m2 - mn);
    m = mn;
  }
  int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  if (lane == 0) {
    s_m[warp] = m;
    s_s[warp] = s;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    int nw = blockDim.x / kWarp;
    float M = s_m[0], S = s_s[0];
    for (int w = 1; w < nw; ++w) {
      float mn = fmaxf(M, s_m[w]);
      S = S * expf(M - mn) + s_s[w] * expf(s_m[w] - mn);
      M = mn;
    }
    s_lse = M + logf(S);
  }
  __syncthreads();
  return s_lse;
}
// 8 values x[e] at columns c + e (those >= V ignored) into the running (m, s): one rescale.
// Only the last chunk of a row can reach V (kTail); the others skip the column checks.
template <bool kTail>
__device__ __forceinline__ void lse_add8(float& m, float& s, const float (&x)[8], int c, int V) {
  constexpr float kL2e = 1.44269504088896341f;
  float m8 = -FLT_MAX;
#pragma unroll
  for (int e = 0; e < 8; ++e)
    if (!kTail || c + e < V) m8 = fmaxf(m8, x[e]);
  if (m8 > m) {
    s *= exp2f((m - m8) * kL2e);
    m = m8;
  }
  const float ml = m * kL2e;
#pragma unroll
  for (int e = 0; e < 8; ++e)
    if (!kTail || c + e < V) s += exp2f(fmaf(x[e], kL2e, -ml));
}
// dlogits of 8 columns c.. in place of the logits (0 for columns >= V): softmax * dscale, and
// -dscale at the target.
template <bool kTail>
__device__ __forceinline__ void ce_grad8(float (&x)[8], int c, int V, int tg, float lse,
                                         float dscale) {
  constexpr float kL2e = 1.44269504088896341f;
  const float ll = lse * kL2e;
#pragma unroll
  for (int e = 0; e < 8; ++e)
    x[e] = !kTail || c + e < V ? exp2f(fmaf(x[e], kL2e, -ll)) * dscale : 0.f;
  if (unsigned(tg - c) < 8u) {
#pragma unroll
    for (int e = 0; e < 8; ++e)
      if (c + e == tg) x[e] -= dscale;
  }
}
// The two passes of the 16-byte kernels over a row z (global or shared memory) of V columns
// (ldV % 8 == 0), thread chunks c = 8 (threadIdx.x + i blockDim.x).
__device__ __forceinline__ float row_lse8(const bf16* z, int V) {
  float m = -FLT_MAX, s = 0.f;
  for (int c = threadIdx.x * 8; c < V; c += blockDim.x * 8) {
    float x[8];
    load_bf<8>(z + c, x);
    if (c + 8 <= V)
      lse_add8<false>(m, s, x, c, V);
    else
      lse_add8<true>(m, s, x, c, V);
  }
  return block_lse(m, s);
}
__device__ __forceinline__ void row_grad8(bf16* out, const bf16* z, int V, int ldV, int tg,
                                          float lse, float dscale) {
  for (int c = threadIdx.x * 8; c < ldV; c += blockDim.x * 8) {
    float x[8];
    load_bf<8>(z + c, x);
    if (c + 8 <= V)
      ce_grad8<false>(x, c, V, tg, lse, dscale);
    else
      ce_grad8<true>(x, c, V, tg, lse, dscale);
    store_bf<8>(out + c, x);
  }
}

__global__ void k_cross_entropy(bf16* logits, float* loss_row, const int32_t* targets, int V,
                                int ldV, float dscale, bool want_grad) {
  size_t row = blockIdx.x;
  bf16* z = logits + row * ldV;
  float m = -FLT_MAX, s = 0.f;
  for (int j = threadIdx.x; j < V; j += blockDim.x) {
    float v = __bfloat162float(z[j]);
    if (v > m) {
      s = s * expf(m - v) + 1.f;
      m = v;
    } else {
      s += expf(v - m);
    }
  }
  const float lse = block_lse(m, s);
  int tg = targets[row];
  if (threadIdx.x == 0) loss_row[row] = lse - __bfloat162float(z[tg]);
  if (!want_grad) return;
  for (int j = threadIdx.x; j < ldV; j += blockDim.x) {
    float g = 0.f;
    if (j < V) g = (expf(__bfloat162float(z[j]) - lse) - (j == tg ? 1.f : 0.f)) * dscale;
    z[j] = __float2bfloat16(g);
  }
}

// ldV % 8 == 0: 16-byte loads and stores, one rescale of the running sum per 8 values.
__global__ void k_cross_entropy8(bf16* logits, float* loss_row, const int32_t* targets, int V,
                                 int ldV, float dscale, bool want_grad) {
  size_t row = blockIdx.x;
  bf16* z = logits + row * ldV;
  const float lse = row_lse8(z, V);
  int tg = targets[row];
  if (threadIdx.x == 0) loss_row[row] = lse - __bfloat162float(z[tg]);
  if (want_grad) row_grad8(z, z, V, ldV, tg, lse, dscale);
}

// The same reading the row from device memory once: cp.async copies it into shared memory
// (ldV * 2 bytes), each thread reading back only its own chunks (so the copies need no
// barrier; z[target] is read after block_lse's barriers), and the gradient comes from there.
constexpr int kCeThreads = 512;
constexpr int kCeSmemMax = 110 * 1024;  // two blocks per multiprocessor
__global__ void __launch_bounds__(kCeThreads, 2)
    k_cross_entropy_smem(bf16* logits, float* loss_row, const int32_t* targets, int V, int ldV,
                         float dscale, bool want_grad) {
  extern __shared__ __align__(16) unsigned char ce_smem[];
  bf16* sz = reinterpret_cast<bf16*>(ce_smem);
  size_t row = blockIdx.x;
  bf16* z = logits + row * ldV;
  for (int c = threadIdx.x * 8; c < ldV; c += kCeThreads * 8) cp_async16(sz + c, z + c, true);
  cp_async_wait_all();
  const float lse = row_lse8(sz, V);
  int tg = targets[row];
  if (threadIdx.x == 0) loss_row[row] = lse - __bfloat162float(sz[tg]);
  if (want_grad) row_grad8(z, sz, V, ldV, tg, lse, dscale);
}

// ---------------------------------------------------------------------------------------------
__global__ void k_adamw(float* p, bf16* p16, const float* g, float* m, float* v,
                        const uint8_t* mask, size_t n, float lr, float b1, float b2, float eps,
                        float wd, float c1, float c2, const float* gscale, const int* skip) {
  if (skip && *skip) return;
  float sc = gscale ? *gscale : 1.f;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    float gi = g[i] * sc;
    float mi = b1 * m[i] + (1.f - b1) * gi;
    float vi = b2 * v[i] + (1.f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float pi = p[i];
    if (mask[i]) pi *= 1.f - lr * wd;
    pi -= lr * (mi / c1) / (sqrtf(vi / c2) + eps);
    p[i] = pi;
    p16[i] = __float2bfloat16(pi);
  }
}

__global__ void k_flag_nonfinite(int* flag, const float* x, int n) {
  int bad = 0;
  // exponent bits all ones: inf or NaN (a bit test, whatever the fast-math flags)
  for (int i = threadIdx.x; i < n; i += blockDim.x)
    bad |= (__float_as_uint(x[i]) & 0x7f800000u) == 0x7f800000u;
  if (__syncthreads_or(bad) && threadIdx.x == 0) *flag = 1;
}

}  // namespace

// =============================================================================================
void gemm(cublasHandle_t h, cudaStream_t s, bool ta, bool tb, int M, int N, int K, const bf16* A,
          int lda, const bf16* B, int ldb, void* D, cudaDataType dt, int ldd, float alpha,
          float beta, int batch, long long sA, long long sB, long long sD) {
  cudaStream_t cur = nullptr;
  AERO_CUBLAS_CHECK(cublasGetStream(h, &cur));
  if (cur != s) AERO_CUBLAS_CHECK(cublasSetStream(h, s));  // (this also resets the workspace)
  // Row-major D = op(A) op(B) is column-major D^T = op(B)^T op(A)^T: swap the operands.
  AERO_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B,
      CUDA_R_16BF, ldb, sB, A, CUDA_R_16BF, lda, sA, &beta, D, dt, ldd, sD, batch,
      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void gemm_dev(cublasHandle_t h, cudaStream_t s, bool ta, bool tb, int M, int N, int K,
              const bf16* A, int lda, const bf16* B, int ldb, void* D, cudaDataType dt, int ldd,
              const float* alpha_dev, const float* beta_dev) {
  cudaStream_t cur = nullptr;
  AERO_CUBLAS_CHECK(cublasGetStream(h, &cur));
  if (cur != s) AERO_CUBLAS_CHECK(cublasSetStream(h, s));
  AERO_CUBLAS_CHECK(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_DEVICE));
  // the same call as gemm's (batch 1), so cuBLAS picks the same kernels
  const cublasStatus_t st = cublasGemmStridedBatchedEx(
      h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, alpha_dev, B,
      CUDA_R_16BF, ldb, 0, A, CUDA_R_16BF, lda, 0, beta_dev, D, dt, ldd, 0, 1, CUBLAS_COMPUTE_32F,
      CUBLAS_GEMM_DEFAULT);
  AERO_CUBLAS_CHECK(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));
  AERO_CUBLAS_CHECK(st);
}

void f32_to_bf16(bf16* out, const float* in, size_t n, cudaStream_t s) {
  k_f32_to_bf16<<<blocks_for(n, 256), 256, 0, s>>>(out, in, n);
  AERO_LAUNCH_CHECK();
}
void fill_f32(float* out, float v, size_t n, cudaStream_t s) {
  k_fill<<<blocks_for(n, 256), 256, 0, s>>>(out, v, n);
  AERO_LAUNCH_CHECK();
}

void embedding_forward(float* out, const int32_t* tok, const float* wte, const float* wpe, int N,
                       int T, int d, cudaStream_t s) {
  k_embed_fwd<<<N, 256, 0, s>>>(out, tok, wte, wpe, N, T, d);
  AERO_LAUNCH_CHECK();
}
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* bucket_tok,
                        const int32_t* bucket_start, const int32_t* order, int U, int B, int T,
                        int d, cudaStream_t s) {
  if (U > 0) {
    k_embed_bwd_wte<<<U, 256, 0, s>>>(dwte, dout, bucket_tok, bucket_start, order, d);
    AERO_LAUNCH_CHECK();
  }
  if (dwpe) {
    k_embed_bwd_wpe<<<blocks_for(size_t(T) * d, 256), 256, 0, s>>>(dwpe, dout, B, T, d);
    AERO_LAUNCH_CHECK();
  }
}

// The row-in-registers kernels are instantiated for NV = d / 128 = 1..8: f(NV as a type).
template <class F>
void with_nv(int d, F&& f) {
  switch (d / 128) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 5: f(std::integral_constant<int, 5>{}); break;
    case 6: f(std::integral_constant<int, 6>{}); break;
    case 7: f(std::integral_constant<int, 7>{}); break;
    default: f(std::integral_constant<int, 8>{}); break;
  }
}
void residual_norm_forward(float* res, bf16* h, float* mean, float* rstd, const float* a,
                           const float* ca, const float* b, const float* cdiv, const float* bias,
                           const float* ln_w, const float* ln_b, int N, int d, cudaStream_t s) {
  const int warps = 8;
  const dim3 grid((N + warps - 1) / warps), block(warps * kWarp);
  auto addr = [](const void* q) { return reinterpret_cast<uintptr_t>(q); };
  const bool vec = d % 128 == 0 && d <= 1024 &&
                   ((addr(res) | addr(a) | addr(b) | addr(bias) | addr(ln_w) | addr(ln_b)) % 16 |
                    addr(h) % 8) == 0;
  if (vec) {
    auto launch = [&](auto kern) {
      kern<<<grid, block, 0, s>>>(res, h, mean, rstd, a, ca, b, cdiv, bias, ln_w, ln_b, N, d);
    };
    with_nv(d, [&](auto nv) { launch(k_residual_norm_fwd_vec<decltype(nv)::value>); });
  } else {
    k_residual_norm_fwd<<<grid, block, 0, s>>>(res, h, mean, rstd, a, ca, b, cdiv, bias, ln_w,
                                               ln_b, N, d);
  }
  AERO_LAUNCH_CHECK();
}
size_t norm_scratch_floats(int N, int d) { return size_t(kNormBlocks) * 2 * d; }
void norm_backward(float* dres, const float* dh, const float* x, const float* mean,
                   const float* rstd, const float* ln_w, float* dln_w, float* dln_b,
                   float* scratch, int N, int d, cudaStream_t s) {
  if (!ln_w) {
    k_add_f32<<<blocks_for(size_t(N) * d, 256), 256, 0, s>>>(dres, dh, size_t(N) * d);
    AERO_LAUNCH_CHECK();
    return;
  }
  int nblk = kNormBlocks;
  size_t smem = size_t(kNormWarps) * 2 * d * sizeof(float);
  if (smem > 48 * 1024)
    AERO_CUDA_CHECK(cudaFuncSetAttribute(k_norm_bwd, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         int(smem)));
  // 16-byte register path for d = 128 NV (NV <= 8) with aligned rows
  const bool vec = d % 128 == 0 && d <= 1024 &&
                   ((reinterpret_cast<uintptr_t>(dres) | reinterpret_cast<uintptr_t>(dh) |
                     reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(ln_w)) % 16) == 0;
  if (vec) {
    auto launch = [&](auto kern) {
      if (smem > 48 * 1024)
        AERO_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             int(smem)));
      kern<<<nblk, kNormWarps * kWarp, smem, s>>>(dres, dh, x, mean, rstd, ln_w, scratch, N, d);
    };
    with_nv(d, [&](auto nv) { launch(k_norm_bwd_vec<decltype(nv)::value>); });
  } else {
    k_norm_bwd<<<nblk, kNormWarps * kWarp, smem, s>>>(dres, dh, x, mean, rstd, ln_w, scratch, N,
                                                      d);
  }
  AERO_LAUNCH_CHECK();
  cols_final(dln_w, dln_b, d, scratch, nblk, 2 * d, s);
  AERO_LAUNCH_CHECK();
}

void qkv_split(bf16* q, bf16* k, bf16* v, const bf16* qkv, const float* bias, int B, int T, int H,
               int dk, cudaStream_t s) {
  if (dk % 8 == 0)
    k_qkv_split<8><<<B * T, 128, 0, s>>>(q, k, v, qkv, bias, T, H, dk);
  else
    k_qkv_split<1><<<B * T, 256, 0, s>>>(q, k, v, qkv, bias, T, H, dk);
  AERO_LAUNCH_CHECK();
}
void qkv_merge(bf16* dqkv, const bf16* dq, const bf16* dk_, const bf16* dv, int B, int T, int H,
               int dk, cudaStream_t s) {
  if (dk % 8 == 0)
    k_qkv_merge<8><<<B * T, 128, 0, s>>>(dqkv, dq, dk_, dv, T, H, dk);
  else
    k_qkv_merge<1><<<B * T, 256, 0, s>>>(dqkv, dq, dk_, dv, T, H, dk);
  AERO_LAUNCH_CHECK();
}
void heads_merge(bf16* y, const bf16* yh, int B, int T, int H, int dk, cudaStream_t s) {
  if (dk % 8 == 0)
    k_heads<true, 8><<<B * T, 128, 0, s>>>(y, yh, T, H, dk);
  else
    k_heads<true, 1><<<B * T, 256, 0, s>>>(y, yh, T, H, dk);
  AERO_LAUNCH_CHECK();
}
void heads_split(bf16* yh, const bf16* y, int B, int T, int H, int dk, cudaStream_t s) {
  if (dk % 8 == 0)
    k_heads<false, 8><<<B * T, 128, 0, s>>>(yh, y, T, H, dk);
  else
    k_heads<false, 1><<<B * T, 256, 0, s>>>(yh, y, T, H, dk);
  AERO_LAUNCH_CHECK();
}

void attn_softmax_forward(const AttnSoftmaxArgs& a, cudaStream_t s) {
  size_t rows = size_t(a.B) * a.H * a.T;
  const int warps = 8;
  k_attn_softmax_fwd<<<unsigned((rows + warps - 1) / warps), warps * kWarp, 0, s>>>(a);
  AERO_LAUNCH_CHECK();
}
void attn_softmax_backward(const AttnSoftmaxBwdArgs& a, cudaStream_t s) {
  size_t rows = size_t(a.B) * a.H * a.T;
  const int warps = 8;
  k_attn_softmax_bwd<<<unsigned((rows + warps - 1) / warps), warps * kWarp, 0, s>>>(a);
  AERO_LAUNCH_CHECK();
}
void temp_grad_reduce(float* dtemp, const float* row, int B, int H, int T, int ctx,
                      cudaStream_t s) {
  k_temp_grad<true><<<(H * T + kWarp - 1) / kWarp, kTempGroups * kWarp, 0, s>>>(dtemp, row, B, H,
                                                                              T, ctx);
  AERO_LAUNCH_CHECK();
}
void theta_grad_reduce(float* dtheta, const float* gE, int B, int H, int T, float factor,
                       float* scratch, cudaStream_t s) {
  k_temp_grad<false><<<(H * T + kWarp - 1) / kWarp, kTempGroups * kWarp, 0, s>>>(scratch, gE, B,
                                                                               H, T, T);
  AERO_LAUNCH_CHECK();
  k_theta_grad<<<H, 256, 0, s>>>(dtheta, scratch, T, factor);
  AERO_LAUNCH_CHECK();
}

void bias_act_forward(bf16* pre, bf16* out, const float* bias, int N, int F, Act act, float slope,
                      cudaStream_t s, const float* slope_dev) {
  if (F % 8 == 0)
    k_bias_act_fwd<8><<<N, 128, 0, s>>>(pre, out, bias, F, act, slope, slope_dev);
  else
    k_bias_act_fwd<1><<<N, 256, 0, s>>>(pre, out, bias, F, act, slope, slope_dev);
  AERO_LAUNCH_CHECK();
}
void act_backward(bf16* dpre, const bf16* dout, const bf16* pre, int N, int F, Act act,
                  float slope, cudaStream_t s, const float* slope_dev) {
  if (F % 8 == 0)
    k_act_bwd<8><<<N, 128, 0, s>>>(dpre, dout, pre, F, act, slope, slope_dev);
  else
    k_act_bwd<1><<<N, 256, 0, s>>>(dpre, dout, pre, F, act, slope, slope_dev);
  AERO_LAUNCH_CHECK();
}
void leaky_slope_grad(float* dslope, const bf16* dout, const bf16* pre, size_t n, float* scratch,
                      cudaStream_t s) {
  k_slope_partial<<<kSumPartials, 256, 0, s>>>(scratch, dout, pre, n);
  AERO_LAUNCH_CHECK();
  k_add_sum<<<1, 32, 0, s>>>(dslope, scratch, kSumPartials);
  AERO_LAUNCH_CHECK();
}
void rotary(bf16* q, bf16* k, const float* cos, const float* sin, int BH, int T, int dk, int R,
            bool inverse, cudaStream_t s) {
  const int half = R / 2;
  if (half <= 0) return;
  k_rotary<<<unsigned(size_t(BH) * T), 64, 0, s>>>(q, k, cos, sin, T, dk, half,
                                                   inverse ? -1.f : 1.f);
  AERO_LAUNCH_CHECK();
}
void weight_norm_forward(bf16* w_eff, float* norms, const float* g, const float* v, int O, int I,
                         int r0, int r1, cudaStream_t s) {
  k_wn_fwd<<<O, 256, 0, s>>>(w_eff, norms, g, v, I, r0, r1);
  AERO_LAUNCH_CHECK();
}
void weight_norm_backward(float* dg, float* dv, const float* G, const float* g, const float* v,
                          const float* norms, int O, int I, int r0, int r1, cudaStream_t s) {
  k_wn_bwd<<<O, 256, 0, s>>>(dg, dv, G, g, v, norms, I, r0, r1);
  AERO_LAUNCH_CHECK();
}
void spectral_norm_forward(bf16* w_eff, float* u, float* v, float* sigma, float* wv,
                           const float* W, int h, int I, bool iterate, cudaStream_t s) {
  k_sn_power<<<1, 1024, 0, s>>>(u, v, sigma, wv, W, h, I, iterate ? 1 : 0);
  AERO_LAUNCH_CHECK();
  const size_t n = size_t(h) * I;
  k_scale_to_bf16<<<blocks_for(n, 256), 256, 0, s>>>(w_eff, W, sigma, n);
  AERO_LAUNCH_CHECK();
}
void spectral_norm_backward(float* dW, const float* G, const float* W, const float* u,
                            const float* v, const float* sigma, int h, int I, float* scratch,
                            cudaStream_t s) {
  const size_t n = size_t(h) * I;
  k_dot_partial<<<kSumPartials, 256, 0, s>>>(scratch, G, W, n);
  AERO_LAUNCH_CHECK();
  k_sum_to0<<<1, 32, 0, s>>>(scratch, kSumPartials);
  AERO_LAUNCH_CHECK();
  k_sn_bwd<<<blocks_for(n, 256), 256, 0, s>>>(dW, G, u, v, sigma, scratch, I, n);
  AERO_LAUNCH_CHECK();
}
void add_bf16_f32(float* dst, const bf16* src, int n, cudaStream_t s) {
  k_add_bf16_f32<<<(n + 255) / 256, 256, 0, s>>>(dst, src, n);
  AERO_LAUNCH_CHECK();
}
void add_f32(float* dst, const float* src, size_t n, cudaStream_t s) {
  k_add_f32<<<blocks_for(n, 256), 256, 0, s>>>(dst, src, n);
  AERO_LAUNCH_CHECK();
}
void ffn_scale_backward(bf16* dm, float* dres, const float* xhat, const float* m, const float* bm,
                        const float* alpha, const float* beta, float* dalpha, float* dbeta,
                        float* scratch, int N, int d, cudaStream_t s, float* dbias,
                        bool scale_dres) {
  auto addr = [](const void* q) { return reinterpret_cast<uintptr_t>(q); };
  if (d % 8 == 0 && ((addr(dm) | addr(dres) | addr(xhat) | addr(m)) % 16) == 0) {
    // 16-byte path, with the bias gradient (column sums of dm) when dbias is given; one final
    // launch adds up the dalpha / dbeta partials and the column partials
    const int nchunk = (N + kColRows - 1) / kColRows, ncol = (d + 255) / 256;
    float* cols = scratch;
    float* ab = scratch + size_t(nchunk) * d;
    k_ffn_scale_bwd8<<<dim3(ncol, nchunk), dim3(32, 8), 0, s>>>(dm, dres, xhat, m, bm, alpha,
                                                                beta, cols, ab, N, d, scale_dres);
    AERO_LAUNCH_CHECK();
    const int fin = dbias ? (d + 31) / 32 : 0;
    k_ffn_scale_final<<<fin + 1, dim3(32, kFinRows), 0, s>>>(dalpha, dbeta, ab, nchunk * ncol,
                                                              dbias, cols, nchunk, d);
    AERO_LAUNCH_CHECK();
    return;
  }
  k_ffn_scale_bwd<<<kScaleBlocks, 256, 0, s>>>(dm, dres, xhat, m, bm, alpha, beta, scratch, N, d,
                                               scale_dres);
  AERO_LAUNCH_CHECK();
  k_ffn_scale_final<<<1, dim3(32, kFinRows), 0, s>>>(dalpha, dbeta, scratch, kScaleBlocks,
                                                      nullptr, nullptr, 0, d);
  AERO_LAUNCH_CHECK();
  if (dbias) colsum(dbias, dm, N, d, scratch, s);
}
size_t ffn_scale_scratch_floats(int N, int d) {
  const int nchunk = (N + kColRows - 1) / kColRows;
  return std::max(size_t(nchunk) * d + 2 * size_t(nchunk) * ((d + 255) / 256),
                  std::max(size_t(2 * kScaleBlocks), colsum_scratch_floats(N, d)));
}

size_t colsum_scratch_floats(int N, int C) {
  return size_t((N + kColRows - 1) / kColRows) * C;
}
void colsum(float* out, const bf16* in, int N, int C, float* scratch, cudaStream_t s) {
  int nchunk = (N + kColRows - 1) / kColRows;
  if (C % 8 == 0) {
    k_colsum_partial8<<<dim3((C + 255) / 256, nchunk), dim3(32, 8), 0, s>>>(scratch, in, N, C);
  } else {
    dim3 grid((C + 31) / 32, nchunk);
    k_colsum_partial<<<grid, dim3(32, 8), 0, s>>>(scratch, in, N, C);
  }
  AERO_LAUNCH_CHECK();
  cols_final(out, nullptr, C, scratch, nchunk, C, s);
  AERO_LAUNCH_CHECK();
}
void colsum_partials_final(float* out, const float* partials, int nchunk, int C, cudaStream_t s) {
  cols_final(out, nullptr, C, partials, nchunk, C, s);
  AERO_LAUNCH_CHECK();
}
bool fused_colsum_ok(int C, const void* a, const void* b, const void* c) {
  auto addr = [](const void* q) { return reinterpret_cast<uintptr_t>(q); };
  return C % 8 == 0 && ((addr(a) | addr(b) | addr(c)) % 16) == 0;
}
void act_backward_bias(bf16* dpre, const bf16* dout, const bf16* pre, float* dbias, int N, int F,
                       Act act, float slope, float* scratch, cudaStream_t s,
                       const float* slope_dev) {
  if (!dbias || !fused_colsum_ok(F, dpre, dout, pre)) {
    act_backward(dpre, dout, pre, N, F, act, slope, s, slope_dev);
    if (dbias) colsum(dbias, dpre, N, F, scratch, s);
    return;
  }
  const int nchunk = (N + kColRows - 1) / kColRows;
  k_fused_colsum8<0><<<dim3((F + 255) / 256, nchunk), dim3(32, 8), 0, s>>>(
      scratch, dpre, dout, pre, nullptr, N, F, act, slope, slope_dev);
  AERO_LAUNCH_CHECK();
  cols_final(dbias, nullptr, F, scratch, nchunk, F, s);
  AERO_LAUNCH_CHECK();
}
void cast_colsum(bf16* out, const float* in, float* dbias, int N, int C, float* scratch,
                 cudaStream_t s) {
  if (!dbias || !fused_colsum_ok(C, out, in, nullptr)) {
    f32_to_bf16(out, in, size_t(N) * C, s);
    if (dbias) colsum(dbias, out, N, C, scratch, s);
    return;
  }
  const int nchunk = (N + kColRows - 1) / kColRows;
  k_fused_colsum8<1><<<dim3((C + 255) / 256, nchunk), dim3(32, 8), 0, s>>>(
      scratch, out, nullptr, nullptr, in, N, C, Act::identity, 0.f, nullptr);
  AERO_LAUNCH_CHECK();
  cols_final(dbias, nullptr, C, scratch, nchunk, C, s);
  AERO_LAUNCH_CHECK();
}
void sum_f32(float* out, const float* in, size_t n, float* scratch, cudaStream_t s) {
  k_sum_partial<false><<<kSumPartials, 256, 0, s>>>(scratch, in, n);
  AERO_LAUNCH_CHECK();
  k_sum_final<<<1, kWarp, 0, s>>>(out, scratch, kSumPartials);
  AERO_LAUNCH_CHECK();
}
size_t sum_f32_segs_scratch_floats(int count) { return size_t(std::max(count, 1)) * kSumPartials; }
void sum_f32_segs(float* out, const float* const* in, int count, size_t n, float* scratch,
                  cudaStream_t s) {
  for (int j0 = 0; j0 < count; j0 += kSumSegs) {
    const int cnt = std::min(kSumSegs, count - j0);
    SumSegs segs{};
    for (int j = 0; j < cnt; ++j) segs.p[j] = in[j0 + j];
    k_sum_partial_segs<<<dim3(kSumPartials, cnt), 256, 0, s>>>(scratch, segs, n);
    AERO_LAUNCH_CHECK();
    k_sum_final<<<cnt, kWarp, 0, s>>>(out + j0, scratch, kSumPartials);
    AERO_LAUNCH_CHECK();
  }
}
void grad_norm(float* norm_out, float* scale_out, const float* g, size_t n, float max_norm,
               float* scratch, cudaStream_t s) {
  k_sum_partial<true><<<kNormPartials, 256, 0, s>>>(scratch, g, n);
  AERO_LAUNCH_CHECK();
  k_norm_final<<<1, kWarp, 0, s>>>(norm_out, scale_out, scratch, kNormPartials, max_norm);
  AERO_LAUNCH_CHECK();
}

void cross_entropy_forward_backward(bf16* logits, float* loss_row, const int32_t* targets, int N,
                                    int V, int ldV, float dscale, bool want_grad,
                                    cudaStream_t s) {
  const size_t smem = size_t(ldV) * sizeof(bf16);
  if (ldV % 8 == 0 && smem <= size_t(kCeSmemMax)) {
    allow_dynamic_smem<k_cross_entropy_smem>(kCeSmemMax);
    k_cross_entropy_smem<<<N, kCeThreads, smem, s>>>(logits, loss_row, targets, V, ldV, dscale,
                                                      want_grad);
  } else if (ldV % 8 == 0)
    k_cross_entropy8<<<N, 512, 0, s>>>(logits, loss_row, targets, V, ldV, dscale, want_grad);
  else
    k_cross_entropy<<<N, 1024, 0, s>>>(logits, loss_row, targets, V, ldV, dscale, want_grad);
  AERO_LAUNCH_CHECK();
}

void adamw(float* p, bf16* p16, const float* g, float* m, float* v, const uint8_t* decay_mask,
           size_t n, float lr, float beta1, float beta2, float eps, float wd, int step,
           const float* grad_scale, cudaStream_t s, const int* skip) {
  float c1 = 1.f - std::pow(beta1, float(step));
  float c2 = 1.f - std::pow(beta2, float(step));
  k_adamw<<<blocks_for(n, 256, 132 * 16), 256, 0, s>>>(p, p16, g, m, v, decay_mask, n, lr, beta1,
                                                       beta2, eps, wd, c1, c2, grad_scale, skip);
  AERO_LAUNCH_CHECK();
}

void flag_nonfinite(int* flag, const float* x, int n, cudaStream_t s) {
  if (n <= 0) return;
  k_flag_nonfinite<<<1, 256, 0, s>>>(flag, x, n);
  AERO_LAUNCH_CHECK();
}

}  // namespace aero::cuda
