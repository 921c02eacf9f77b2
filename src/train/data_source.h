// The token data of a run: data.dir's shards (docs/formats.md) or, when data.dir is empty,
// the built-in synthetic corpus (synthetic_corpus.h). Checks that every token id fits the
// model's vocabulary.
#pragma once
#include <string>

#include "model/config.h"
#include "text/shard.h"

namespace aero::train {

// split_name: the split to open (e.g. cfg.data.train_split).
text::TokenDataset open_split(const model::RunConfig& cfg, const std::string& split_name);

// A command's --split onto the run's split names: "train" / "valid" mean data.train_split /
// data.valid_split; any other name is a split of data.dir as it is.
std::string split_name(const model::RunConfig& cfg, const std::string& split);

}  // namespace aero::train
