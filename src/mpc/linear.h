// Products on masked wires (all one round: the opening of the output).
//
// matmul_w: Y = X W with X a secret activation (M x K, masked wire) and W the server's
//   weights (K x N). The weights are masked once per model, W^ = W + R_W (R_W expands from a
//   model seed shared by dealer and server; the server sends W^ to the client once). Then
//   X W = X^ W - [R_X] W^ + [R_X R_W], so with dealer shares of R_X and R_X R_W + R_Y each
//   party computes its share of Y + R_Y with two (server) or one (client) local GEMMs.
//   Online: one opening of Y (w bits per element each way). Keys: party 0 a seed; party 1
//   (M K + M N) w bits. To reuse one opening of X for Q, K and V, concatenate W_Q|W_K|W_V.
// matmul_ss: C = A B with both A (M x K) and B (K x N) secret (attention scores Q K^T,
//   probabilities x V). C = A^ B^ - A^ [R_B] - [R_A] B^ + [R_A R_B]. Keys for party 1:
//   (M K + K N + M N) w bits. Three GEMMs per party.
// mul: elementwise product of two masked wires (the 1 x 1 x 1 case per element); select
//   b ? x : y = y + b (x - y) for a masked bit b uses it.
// Source: the "masked wire" evaluation of degree-2 gates, Boyle et al. Eurocrypt 2021,
// (offset functions / masked inputs); SIGMA (Gupta et al., PoPETs 2024), linear layers.
// All arithmetic is in Z_2^w; the caller picks w so the true result fits (see docs/mpc.md).
#pragma once
#include <span>
#include <vector>

#include "mpc/party.h"

namespace aero::mpc {

struct MatShape {
  size_t m = 0, k = 0, n = 0;
};

// C += A B (or C -= A B) over Z_2^64, row-major, multithreaded.
void gemm_acc(const MatShape& s, const u64* a, const u64* b, u64* c, bool subtract = false);

// The weight mask of tensor `tensor_id` of a model: R_W = PRG(model_seed, tensor_id).
std::vector<u64> weight_mask(Block model_seed, u64 tensor_id, size_t n, int w);
// Server: W^ = W + R_W (mod 2^w).
std::vector<u64> mask_weights(std::span<const u64> w_plain, std::span<const u64> r_w, int w);

std::vector<u64> matmul_w_deal(Dealer& d, const MatShape& s, std::span<const u64> r_x,
                               std::span<const u64> r_w, int w);
// w_plain: the server's plaintext weights (server only; empty at the client).
std::vector<u64> matmul_w_eval(Party& p, const MatShape& s, std::span<const u64> x_hat,
                               std::span<const u64> w_hat, std::span<const u64> w_plain, int w);

// Party side without the opening (for mpc::open_many with other gates of the same round).
std::vector<u64> matmul_w_shares(Party& p, const MatShape& s, std::span<const u64> x_hat,
                                 std::span<const u64> w_hat, std::span<const u64> w_plain, int w);

std::vector<u64> matmul_ss_deal(Dealer& d, const MatShape& s, std::span<const u64> r_a,
                                std::span<const u64> r_b, int w);
std::vector<u64> matmul_ss_eval(Party& p, const MatShape& s, std::span<const u64> a_hat,
                                std::span<const u64> b_hat, int w);

// Batched secret x secret products: `batch` independent products A_b (m x k) B_b (k x n)
// (all heads of an attention layer) opened in ONE round. A is [batch][m][k], B [batch][k][n].
//   tri_a:   A_b is lower triangular (m == k) with public zeros above the diagonal (their
//            masks are 0): the dealer sends no shares of those mask entries (causal P V).
//   tri_out: only the lower triangle (j <= i, m == n) of each C_b is computed and opened
//            (causal Q K^T): output order b, i, j <= i; batch * m (m + 1) / 2 entries.
// Keys (party 1): w/8 x (shared entries of A + all of B + opened entries of C).
struct BatchMatShape {
  MatShape mat;
  size_t batch = 1;
  bool tri_a = false, tri_out = false;
  void check() const;
  size_t out_count() const { return batch * (tri_out ? mat.m * (mat.m + 1) / 2 : mat.m * mat.n); }
};
std::vector<u64> matmul_ss_batch_deal(Dealer& d, const BatchMatShape& s, std::span<const u64> r_a,
                                      std::span<const u64> r_b, int w);
std::vector<u64> matmul_ss_batch_shares(Party& p, const BatchMatShape& s, std::span<const u64> a_hat,
                                        std::span<const u64> b_hat, int w);
std::vector<u64> matmul_ss_batch_eval(Party& p, const BatchMatShape& s, std::span<const u64> a_hat,
                                      std::span<const u64> b_hat, int w);

// Row quadratic form, one opening per row: y_t = a sum_i x_ti^2 - b (sum_i x_ti)^2 for x
// (rows x cols). Degree 2 in the masked input, so local given dealer shares of the masks and
// of the per-row mask polynomial (the masked-wire idea of Boyle et al. EC'21; SPEC 6.1):
//   y = a sum (x^ - r)^2 - b (s^ - r_s)^2,  s^ = sum x^, r_s = sum r.
// LayerNorm's d sum x^2 - (sum x)^2 opens `rows` values instead of rows x (cols + 1) products.
// Keys (party 1): w/8 x (rows cols + rows). Rounds 1.
std::vector<u64> quad_rows_deal(Dealer& d, size_t rows, size_t cols, u64 a, u64 b, std::span<const u64> r_x, int w);
std::vector<u64> quad_rows_eval(Party& p, size_t rows, size_t cols, u64 a, u64 b, std::span<const u64> x_hat, int w);

std::vector<u64> mul_deal(Dealer& d, std::span<const u64> r_a, std::span<const u64> r_b, int w);

// Exact key bytes each gate writes to `party`'s stream (marker included; party 0's shares come
// from its seed stream, so it gets the markers only).
size_t matmul_w_key_bytes(const MatShape& s, int w, int party);
size_t matmul_ss_batch_key_bytes(const BatchMatShape& s, int w, int party);
size_t quad_rows_key_bytes(size_t rows, size_t cols, int w, int party);
size_t mul_key_bytes(size_t n, int w, int party);
// `tag`: the operator name the traffic is metered under (select passes "select").
std::vector<u64> mul_eval(Party& p, std::span<const u64> a_hat, std::span<const u64> b_hat, int w,
                          const char* tag = "mul");
std::vector<u64> mul_shares(Party& p, std::span<const u64> a_hat, std::span<const u64> b_hat, int w);  // no opening

// b must be a masked 0/1 value of width w (e.g. drelu's output with out_bits = w).
std::vector<u64> select_deal(Dealer& d, std::span<const u64> r_b, std::span<const u64> r_x,
                             std::span<const u64> r_y, int w);
std::vector<u64> select_eval(Party& p, std::span<const u64> b_hat, std::span<const u64> x_hat,
                             std::span<const u64> y_hat, int w);

}  // namespace aero::mpc
