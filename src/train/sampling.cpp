#include "train/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"

namespace aero::train {

uint32_t sample_next(const float* logits, int V, const SampleOptions& o, Rng& rng) {
  AERO_CHECK(o.temperature >= 0, "--temperature must be >= 0, got ", o.temperature);
  if (o.temperature == 0) return uint32_t(std::max_element(logits, logits + V) - logits);
  std::vector<int> idx(static_cast<size_t>(V));
  std::iota(idx.begin(), idx.end(), 0);
  int k = (o.top_k > 0 && o.top_k < V) ? o.top_k : V;
  if (k < V)
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                      [&](int a, int b) { return logits[a] > logits[b]; });
  double mx = -INFINITY;
  for (int i = 0; i < k; ++i) mx = std::max(mx, double(logits[idx[size_t(i)]]));
  std::vector<double> p(static_cast<size_t>(k));
  double z = 0;
  for (int i = 0; i < k; ++i) z += p[size_t(i)] = std::exp((logits[idx[size_t(i)]] - mx) / o.temperature);
  double u = rng.uniform() * z;
  for (int i = 0; i < k; ++i) {
    u -= p[size_t(i)];
    if (u < 0) return uint32_t(idx[size_t(i)]);
  }
  return uint32_t(idx[size_t(k - 1)]);
}

std::vector<uint32_t> generate(model::Model& m, const std::vector<uint32_t>& prompt,
                               int max_seq, const SampleOptions& o,
                               const std::function<void(uint32_t)>& on_token) {
  AERO_CHECK(!prompt.empty(), "generate: the prompt is empty (give at least one token)");
  const int V = m.config().vocab_size;
  for (uint32_t t : prompt)
    AERO_CHECK(t < uint32_t(V), "generate: prompt token ", t, " is outside the vocabulary (", V, ")");
  Rng rng(o.seed);
  std::vector<int32_t> ctx(prompt.begin(), prompt.end());
  std::vector<uint32_t> out;
  for (int n = 0; n < o.tokens; ++n) {
    const int T = int(std::min<size_t>(ctx.size(), size_t(max_seq)));
    const int32_t* in = ctx.data() + (ctx.size() - size_t(T));
    m.forward(in, nullptr, 1, T, /*training=*/false);
    const float* row = m.logits() + size_t(T - 1) * size_t(V);
    for (int i = 0; i < V; ++i)
      AERO_CHECK(std::isfinite(row[i]), "generate: non-finite logits: ", m.find_nonfinite());
    const uint32_t next = sample_next(row, V, o, rng);
    out.push_back(next);
    ctx.push_back(int32_t(next));
    if (on_token) on_token(next);
  }
  return out;
}

}  // namespace aero::train
