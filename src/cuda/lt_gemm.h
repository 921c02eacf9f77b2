// Matrix products with fused epilogues through cuBLASLt (bf16 operands, fp32 accumulation),
// the same row-major conventions as gemm() in kernels.h. Each call returns false when cuBLASLt
// offers no algorithm for that shape, layout and epilogue (the caller then runs its unfused
// path); the choice is made once per shape and kept, so a run uses one algorithm throughout.
#pragma once
#include "cuda/common.h"

namespace aero::cuda {

// Row-major D[M,N] (type dt, leading dim ldd) = op(A) op(B) (+ beta D), then:
//  bias          D += bias[N] (bias of D's type)
//  gelu_aux_bias aux[M,N] (bf16, leading dim ldaux) = op(A) op(B) + bias[N] (bf16 bias,
//                D bf16), D = gelu_tanh(aux)
//  dgelu_bgrad   D = (op(A) op(B)) * gelu_tanh'(aux); bias[N] (out, D's type) = column sums of
//                D (sum over the M rows)
//  bgrad_a       D plain; bias[M] (out, D's type) = sum over k of op(A)[m, k], i.e. the
//                column sums of the stored [K, M] A when ta (the bias gradient of a linear whose
//                output gradient is A, in its weight-gradient product)
enum class Epi : int { none = 0, bias = 1, gelu_aux_bias = 2, dgelu_bgrad = 3, bgrad_a = 4 };

struct LtGemm;  // handle, workspace and the per-shape algorithm cache
LtGemm* lt_create();
void lt_destroy(LtGemm* lt);
bool lt_gemm(LtGemm* lt, cudaStream_t s, bool ta, bool tb, int M, int N, int K, const bf16* A,
             int lda, const bf16* B, int ldb, void* D, cudaDataType dt, int ldd, float beta,
             Epi epi, void* bias, const bf16* aux, int ldaux);
// Number of lt_gemm calls that ran with an epilogue in this process (tests).
long long lt_epilogue_calls();

}  // namespace aero::cuda
