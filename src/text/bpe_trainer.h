// Byte-level BPE training (Sennrich et al. 2016, "Neural Machine Translation of Rare Words
// with Subword Units", Algorithm 1; byte-level alphabet and GPT-2 pre-tokenization as in
// Radford et al. 2019): words are the GPT-2 pre-tokens of the corpus with their counts; the
// most frequent adjacent pair (ties: the smaller pair of ids) becomes a new token, until the
// vocabulary has the requested size. Token ids: 0-255 the bytes, then one per merge in order,
// then <|endoftext|> last.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "text/bpe.h"

namespace aero::text {

struct BpeTrainOptions {
  uint32_t vocab_size = 8192;   // <|endoftext|> included
  uint64_t max_bytes = 0;       // 0 = all input
  uint64_t min_frequency = 2;   // stop when the best pair is rarer
  int threads = 0;              // 0 = all cores
  bool progress = true;
};

using WordCounts = std::unordered_map<std::string, uint64_t>;

// Adds the GPT-2 pre-tokens of text to counts.
void count_words(std::string_view text, WordCounts& counts);
// Reads files and directories (recursively: *.py, *.txt, and *.jsonl.xz whose lines carry a
// "text" field) and counts their words with several threads.
WordCounts count_words_in_inputs(const std::vector<std::string>& inputs, const BpeTrainOptions& opt);

std::unique_ptr<ByteLevelBpe> train_bpe(const WordCounts& words, const BpeTrainOptions& opt,
                                        const std::string& name = "trained");

}  // namespace aero::text
