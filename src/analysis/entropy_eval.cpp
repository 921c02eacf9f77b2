#include "analysis/entropy_eval.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "core/error.h"
#include "core/progress.h"
#include "train/batcher.h"

namespace aero::analysis {

EntropyMeasurement measure_entropy(model::Model& m, const text::TokenDataset& ds, int T, int B,
                                   int64_t max_batches, bool show_progress) {
  const auto& cfg = m.config();
  AERO_CHECK(T > 0 && T <= m.max_seq(), "entropy: sequence length ", T, " must be in [1, ", m.max_seq(), "]");
  AERO_CHECK(B > 0 && B <= m.max_batch(), "entropy: batch size ", B, " must be in [1, ", m.max_batch(), "]");
  train::ChunkBatcher batcher(ds, T, 0, /*shuffle=*/false);
  uint64_t n = batcher.num_chunks();
  AERO_CHECK(n > 0, "entropy: the split has ", ds.size(), " tokens, fewer than one chunk of T+1 = ", T + 1);
  if (max_batches > 0) n = std::min<uint64_t>(n, uint64_t(max_batches) * uint64_t(B));
  std::vector<int32_t> tok(size_t(B) * T), tgt(size_t(B) * T);
  EntropyAccumulator acc(cfg.n_layer, cfg.n_head);
  EntropyMeasurement r;
  double ce_sum = 0;
  std::unique_ptr<Progress> prog;
  if (show_progress) prog = std::make_unique<Progress>("entropy", double(n), "seq");
  for (uint64_t done = 0; done < n;) {
    const int b = int(std::min<uint64_t>(uint64_t(B), n - done));
    batcher.next_batch(b, tok.data(), tgt.data());
    const model::ForwardStats s = m.forward(tok.data(), tgt.data(), b, T, /*training=*/false);
    ce_sum += s.ce * b;
    for (int l = 0; l < cfg.n_layer; ++l) acc.add_layer(l, m.attn_probs(l), b, T);
    if (r.nonfinite.empty() && !std::isfinite(s.ce)) r.nonfinite = m.find_nonfinite();
    done += uint64_t(b);
    if (prog) prog->update(double(done));
  }
  if (prog) prog->finish();
  r.chunks = n;
  r.ce = ce_sum / double(n);
  int64_t nan_values = 0;
  for (auto& row : acc.nan_values())
    for (auto v : row) nan_values += v;
  r.summary = summarize_entropy(acc.mean(), T, nan_values, int64_t(n));
  return r;
}

}  // namespace aero::analysis
