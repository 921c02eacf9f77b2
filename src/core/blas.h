// Matrix products through the system BLAS (Debian's OpenBLAS, OpenMP flavour), row-major.
// C[m x n] = alpha * op(A) op(B) + beta * C, op = transpose when the flag is set.
// On this project's machines OpenBLAS reads OPENBLAS_CORETYPE only at process start: set it
// (e.g. SkylakeX or Haswell) before launching a benchmark; see docs/benchmarks.md.
#pragma once

namespace aero {

void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* A,
           int lda, const float* B, int ldb, float beta, float* C, int ldc);
void dgemm(bool trans_a, bool trans_b, int m, int n, int k, double alpha, const double* A,
           int lda, const double* B, int ldb, double beta, double* C, int ldc);
// Number of threads OpenMP and the BLAS use (AERO_THREADS or OMP_NUM_THREADS, else cores).
int num_threads();
void set_num_threads(int n);

}  // namespace aero
