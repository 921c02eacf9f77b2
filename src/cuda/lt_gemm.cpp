// cuBLASLt products with fused epilogues (lt_gemm.h). Row-major D = op(A) op(B) is the
// column-major D^T = op(B)^T op(A)^T, so cuBLASLt's A is our B and its B is our A: a bias over
// our columns (N) is its bias over rows; our bgrad_a (a reduction of our A over k) is its
// BGRADB.
#include "cuda/lt_gemm.h"

#include <cublasLt.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <map>

namespace aero::cuda {

namespace {
std::atomic<long long> g_epi_calls{0};

int align_of(const void* p) {
  auto v = reinterpret_cast<uintptr_t>(p);
  for (int a : {16, 8, 4})
    if (v % a == 0) return a;
  return 2;
}

struct Plan {
  bool ok = false;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
  cublasLtMatmulAlgo_t algo{};
};
using Key = std::array<long long, 17>;
}  // namespace

struct LtGemm {
  cublasLtHandle_t h = nullptr;
  void* ws = nullptr;
  size_t ws_bytes = size_t(32) << 20;
  std::map<Key, Plan> plans;
};

LtGemm* lt_create() {
  auto* lt = new LtGemm;
  AERO_CUBLAS_CHECK(cublasLtCreate(&lt->h));
  AERO_CUDA_CHECK(cudaMalloc(&lt->ws, lt->ws_bytes));
  return lt;
}

void lt_destroy(LtGemm* lt) {
  if (!lt) return;
  for (auto& [k, p] : lt->plans) {
    if (p.la) cublasLtMatrixLayoutDestroy(p.la);
    if (p.lb) cublasLtMatrixLayoutDestroy(p.lb);
    if (p.ld) cublasLtMatrixLayoutDestroy(p.ld);
    if (p.op) cublasLtMatmulDescDestroy(p.op);
  }
  cudaFree(lt->ws);
  cublasLtDestroy(lt->h);
  delete lt;
}

long long lt_epilogue_calls() { return g_epi_calls.load(); }

bool lt_gemm(LtGemm* lt, cudaStream_t s, bool ta, bool tb, int M, int N, int K, const bf16* A,
             int lda, const bf16* B, int ldb, void* D, cudaDataType dt, int ldd, float beta,
             Epi epi, void* bias, const bf16* aux, int ldaux) {
  if (!lt) return false;
  int dev = 0;
  AERO_CUDA_CHECK(cudaGetDevice(&dev));
  Key key{ta, tb, M, N, K, lda, ldb, ldd, (long long)dt, beta != 0.f, (long long)epi, ldaux,
          align_of(A) * 100 + align_of(B), align_of(D), bias ? align_of(bias) : 0,
          aux ? align_of(aux) : 0, dev};
  auto it = lt->plans.find(key);
  if (it == lt->plans.end()) {
    Plan p;
    AERO_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t opa = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    AERO_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    AERO_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    cublasLtEpilogue_t e = CUBLASLT_EPILOGUE_DEFAULT;
    switch (epi) {
      case Epi::none: break;
      case Epi::bias: e = CUBLASLT_EPILOGUE_BIAS; break;
      case Epi::gelu_aux_bias: e = CUBLASLT_EPILOGUE_GELU_AUX_BIAS; break;
      case Epi::dgelu_bgrad: e = CUBLASLT_EPILOGUE_DGELU_BGRAD; break;
      case Epi::bgrad_a: e = CUBLASLT_EPILOGUE_BGRADB; break;
    }
    AERO_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e));
    if (epi != Epi::none) {
      AERO_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                   sizeof bias));
      int32_t bt = dt;  // the bias (gradient) has D's type
      AERO_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt,
                                                   sizeof bt));
    }
    if (epi == Epi::gelu_aux_bias || epi == Epi::dgelu_bgrad) {
      int64_t ld = ldaux;
      AERO_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER,
                                                   &aux, sizeof aux));
      AERO_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld,
                                                   sizeof ld));
      int32_t at = CUDA_R_16BF;
      AERO_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
          p.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, &at, sizeof at));
    }
    // column-major: cuBLASLt A = our B ([N, K] after op), its B = our A ([K, M] after op)
    AERO_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.la, CUDA_R_16BF, tb ? K : N, tb ? N : K, ldb));
    AERO_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.lb, CUDA_R_16BF, ta ? M : K, ta ? K : M, lda));
    AERO_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.ld, dt, N, M, ldd));
    cublasLtMatmulPreference_t pref = nullptr;
    AERO_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    AERO_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &lt->ws_bytes, sizeof lt->ws_bytes));
    cublasLtMatmulHeuristicResult_t res{};
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt->h, p.op, p.la, p.lb, p.ld, p.ld, pref,
                                                       1, &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    p.ok = st == CUBLAS_STATUS_SUCCESS && found > 0 && res.state == CUBLAS_STATUS_SUCCESS;
    if (p.ok) p.algo = res.algo;
    it = lt->plans.emplace(key, p).first;
  }
  Plan& p = it->second;
  if (!p.ok) return false;
  if (epi != Epi::none)
    AERO_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                 sizeof bias));
  if (epi == Epi::gelu_aux_bias || epi == Epi::dgelu_bgrad)
    AERO_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER,
                                                 &aux, sizeof aux));
  const float alpha = 1.f;
  AERO_CUBLAS_CHECK(cublasLtMatmul(lt->h, p.op, &alpha, B, p.la, A, p.lb, &beta, D, p.ld, D, p.ld,
                               &p.algo, lt->ws, lt->ws_bytes, s));
  if (epi != Epi::none) ++g_epi_calls;
  return true;
}

}  // namespace aero::cuda
