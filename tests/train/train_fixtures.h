// Shared helpers of the trainer tests: small run configs, temporary run directories, and a
// real-text corpus (Debian's Python standard library sources, byte-tokenized, vocab 256).
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "model/config.h"

namespace aero::train::testing {

// The "tiny" preset shrunk for tests, with extra --set style overrides applied last.
model::RunConfig small_config(const std::vector<std::string>& extra = {});
// A fresh empty directory under the test temp dir.
std::string fresh_dir(const std::string& name);
// Writes train/valid shards of byte-tokenized real text (the .py files of the system
// Python library, sorted by name, about max_bytes in total; the last ~10% is valid).
// Returns the directory, or "" if no such text exists on this machine.
std::string real_text_shards(size_t max_bytes);
// Cross-entropy (nats) of the valid split under the train split's unigram distribution
// (add-one smoothed): the baseline a model must beat to have learned anything in context.
double unigram_baseline(const std::string& shard_dir);

}  // namespace aero::train::testing
