// Attention-entropy statistics (SPEC section 3), pure functions over attention probabilities
// or per-head entropies, so they are testable without a model.
//
// Head entropy of one causal attention matrix A (rows sum to 1, upper triangle 0):
//   E = -(1/T) sum_i sum_{j<=i} a_ij ln(a_ij + 1e-9), averaged over the batch as well.
// Bins relative to Max = the largest observed head entropy: [0, Max/4), [Max/4, Max/2),
// [Max/2, 3Max/4), [3Max/4, Max]. Entropic overload = the fraction of heads in the top bin;
// entropy collapse = the fraction in the bottom bin. With causal masking the largest possible
// mean entropy is ln(T!)/T (every row uniform over its i+1 keys).
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace aero::analysis {

using Matrix = std::vector<std::vector<double>>;  // [L][H]

constexpr double kEntropyEps = 1e-9;

// Mean row entropy of one head's T x T attention matrix (row stride `ld`, default T); only
// the causal part j <= i is read. Non-finite probabilities make the result NaN.
double head_entropy(const float* probs, int T, int ld = 0);
// ln(T!)/T, the largest mean entropy of a causal attention matrix over T positions.
double max_causal_entropy(int T);

// Accumulates per-(layer, head) entropies over batches of attention probabilities.
class EntropyAccumulator {
 public:
  EntropyAccumulator(int n_layer, int n_head);
  // probs: [B, H, T, T] of one layer (Model::attn_probs layout).
  void add_layer(int layer, const float* probs, int B, int T);
  // Mean over the samples added; NaN for a head when any of its samples was non-finite.
  Matrix mean() const;
  // Non-finite probability values seen, per (layer, head).
  const std::vector<std::vector<int64_t>>& nan_values() const { return nan_values_; }
  int64_t samples(int layer) const { return samples_[layer]; }

 private:
  int L_, H_;
  Matrix sum_;
  std::vector<std::vector<int64_t>> bad_samples_, nan_values_;
  std::vector<int64_t> samples_;
};

struct EntropySummary {
  int n_layer = 0, n_head = 0, T = 0;
  Matrix entropy;                    // [L][H] nats (NaN: a head whose entropy is non-finite)
  std::vector<double> layer_mean;    // mean over the finite heads of each layer
  double max_observed = 0;           // Max: the largest finite head entropy
  double max_theoretical = 0;        // ln(T!)/T
  std::array<int64_t, 4> bin_counts{};
  std::array<double, 4> bin_fractions{};  // of the finite heads
  double overload_fraction = 0;      // top bin [3Max/4, Max]
  double collapse_fraction = 0;      // bottom bin [0, Max/4)
  int64_t nan_heads = 0;             // heads with a non-finite entropy
  int64_t nan_values = 0;            // non-finite attention probabilities seen (0 if unknown)
  int64_t samples = 0;               // sequences the means are over (0 if unknown)
};

// Bin index 0..3 of entropy e relative to max (values above max go to bin 3).
int entropy_bin(double e, double max);
// Summarizes an [L][H] entropy matrix for sequences of length T.
EntropySummary summarize_entropy(const Matrix& entropy, int T, int64_t nan_values = 0, int64_t samples = 0);

// The bin labels, e.g. "[0, Max/4)", and with numbers for a given Max "[0.00, 0.97)".
std::array<std::string, 4> bin_labels();
std::array<std::string, 4> bin_ranges(double max);

nlohmann::json to_json(const EntropySummary& s);
// The table `aero entropy` prints: L x H entropies, per-layer mean, bins, overload/collapse.
std::string format_summary(const EntropySummary& s);

// The paper's bin distribution (percent of heads per bin) for GPT-2 L=12 T=128 on CodeParrot
// (SPEC section 3), by architecture name: SM+LN+G 4/14/74/8, SM+LN+R 6/16/74/3,
// SM+G 1/18/23/58, SM+R 3/20/53/24, SM 33/?/?/45 (NaN where the paper gives no number).
// All NaN for other architectures.
std::array<double, 4> paper_entropy_bins(const std::string& architecture);

// Plots like the paper's figures: the L x H heatmap and the bin histogram (percent of heads).
// base_dir/entropy_heatmap.{svg,png}, base_dir/entropy_bins.{svg,png}. `reference` (percent,
// e.g. paper_entropy_bins) is drawn beside the measured bars when any entry is finite, named
// `reference_name`. Returns the paths written.
std::vector<std::string> plot_entropy(const EntropySummary& s, const std::string& base_dir,
                                      const std::string& run_name, bool png = true,
                                      const std::array<double, 4>& reference = {NAN, NAN, NAN, NAN},
                                      const std::string& reference_name = "");

}  // namespace aero::analysis
