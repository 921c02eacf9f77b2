#include "train/data_source.h"

#include "core/error.h"
#include "train/synthetic_corpus.h"

namespace aero::train {

text::TokenDataset open_split(const model::RunConfig& cfg, const std::string& split) {
  const uint32_t V = uint32_t(cfg.model.vocab_size);
  if (cfg.data.dir.empty()) {
    // The synthetic corpus names its splits train/valid; map the configured names onto them.
    const std::string s = split == cfg.data.valid_split ? "valid" : split == cfg.data.train_split ? "train" : split;
    return synthetic_corpus(V, s);
  }
  text::TokenDataset ds = text::TokenDataset::open(cfg.data.dir, split);
  AERO_CHECK(ds.vocab_size() <= V, "data.dir ", cfg.data.dir, " split '", split,
             "' has vocabulary size ", ds.vocab_size(), " but model.vocab_size is ", V);
  return ds;
}

std::string split_name(const model::RunConfig& cfg, const std::string& split) {
  if (split == "valid") return cfg.data.valid_split;
  if (split == "train") return cfg.data.train_split;
  return split;
}

}  // namespace aero::train
