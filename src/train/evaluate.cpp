#include "train/evaluate.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "core/error.h"
#include "core/progress.h"
#include "train/batcher.h"

namespace aero::train {

EvalResult evaluate(model::Model& m, const text::TokenDataset& ds, int T, int B,
                    int64_t max_batches, bool show_progress) {
  ChunkBatcher batcher(ds, T, 0, /*shuffle=*/false);
  uint64_t n = batcher.num_chunks();
  if (max_batches > 0) n = std::min<uint64_t>(n, uint64_t(max_batches) * uint64_t(B));
  std::vector<int32_t> tok(size_t(B) * T), tgt(size_t(B) * T);
  EvalResult r;
  double ce_sum = 0;  // sum over chunks of (mean CE of the chunk's batch) * chunks
  std::unique_ptr<Progress> prog;
  if (show_progress) prog = std::make_unique<Progress>("eval", double(n), "chunk");
  for (uint64_t done = 0; done < n;) {
    const int b = int(std::min<uint64_t>(uint64_t(B), n - done));
    batcher.next_batch(b, tok.data(), tgt.data());
    const model::ForwardStats s = m.forward(tok.data(), tgt.data(), b, T, /*training=*/false);
    AERO_CHECK(std::isfinite(s.ce), "evaluation: non-finite loss at chunk ", done, ": ",
               m.find_nonfinite());
    ce_sum += s.ce * b;
    auto e = m.head_entropy();
    if (r.entropy.empty()) r.entropy.assign(e.size(), std::vector<double>(e.empty() ? 0 : e[0].size(), 0.0));
    for (size_t l = 0; l < e.size(); ++l)
      for (size_t h = 0; h < e[l].size(); ++h) r.entropy[l][h] += e[l][h] * b;
    done += uint64_t(b);
    if (prog) prog->update(double(done));
  }
  if (prog) prog->finish();
  r.chunks = n;
  r.tokens = n * uint64_t(T);
  r.ce = n ? ce_sum / double(n) : NAN;
  r.ppl = std::exp(r.ce);
  for (auto& row : r.entropy)
    for (auto& x : row) x /= double(n);
  return r;
}

}  // namespace aero::train
