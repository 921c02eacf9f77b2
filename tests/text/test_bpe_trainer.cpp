// BPE trainer: equal to a naive re-counting trainer on a small corpus, lossless, deterministic,
// and its tokenizer.json loads back to the same encoder.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/files.h"
#include "core/rng.h"
#include "text/bpe_trainer.h"

using namespace aero::text;

namespace {
const std::string kSrc = AERO_SOURCE_DIR;

// Reference: Sennrich et al.'s loop, recounting every pair at every step.
std::vector<std::pair<std::string, std::string>> naive_merges(const WordCounts& counts, size_t n) {
  std::map<std::string, uint64_t> sorted(counts.begin(), counts.end());
  std::vector<std::vector<std::string>> words;
  std::vector<uint64_t> freq;
  for (auto& [w, c] : sorted) {
    std::vector<std::string> s;
    for (char ch : w) s.emplace_back(1, ch);
    words.push_back(s);
    freq.push_back(c);
  }
  // Ids as the trainer assigns them, for its tie-break (smaller (left id, right id) wins).
  std::map<std::string, uint32_t> id;
  for (int b = 0; b < 256; ++b) id[std::string(1, char(b))] = b;
  std::vector<std::pair<std::string, std::string>> out;
  while (id.size() < 256 + n) {
    std::map<std::pair<uint32_t, uint32_t>, uint64_t> pc;
    for (size_t w = 0; w < words.size(); ++w)
      for (size_t k = 0; k + 1 < words[w].size(); ++k)
        pc[{id[words[w][k]], id[words[w][k + 1]]}] += freq[w];
    std::pair<uint32_t, uint32_t> best;
    uint64_t bc = 0;
    for (auto& [p, c] : pc)
      if (c > bc) bc = c, best = p;  // map order: the first of equal counts is the smallest pair
    if (bc < 2) break;
    std::string a, b;
    for (auto& [s, i] : id) {
      if (i == best.first) a = s;
      if (i == best.second) b = s;
    }
    out.emplace_back(a, b);
    if (!id.count(a + b)) {
      uint32_t next = uint32_t(id.size());
      id[a + b] = next;
    }
    for (auto& s : words) {
      std::vector<std::string> t;
      for (size_t k = 0; k < s.size();) {
        if (k + 1 < s.size() && s[k] == a && s[k + 1] == b) t.push_back(a + b), k += 2;
        else t.push_back(s[k++]);
      }
      s = t;
    }
  }
  return out;
}

std::string corpus() {
  std::string text = aero::read_file(kSrc + "/src/text/bpe.cpp");
  return text.substr(0, 6000) + "aaaa aaa aa a \n\n\n   x  'll 'll";
}
}  // namespace

TEST(BpeTrainer, EqualsNaiveRecountingTrainer) {
  WordCounts wc;
  count_words(corpus(), wc);
  BpeTrainOptions opt;
  opt.vocab_size = 257 + 120;
  opt.progress = false;
  auto bpe = train_bpe(wc, opt);
  auto want = naive_merges(wc, 120);
  ASSERT_EQ(bpe->merges().size(), want.size());
  for (size_t r = 0; r < want.size(); ++r) {
    auto [a, b] = bpe->merges()[r];
    EXPECT_EQ(bpe->token_bytes(a), want[r].first) << "merge " << r;
    EXPECT_EQ(bpe->token_bytes(b), want[r].second) << "merge " << r;
  }
  EXPECT_EQ(bpe->vocab_size(), opt.vocab_size);
}

TEST(BpeTrainer, LosslessDeterministicAndJsonRoundTrip) {
  std::string text = aero::read_file(kSrc + "/src/text/unicode.cpp");
  WordCounts wc;
  count_words(text, wc);
  BpeTrainOptions opt;
  opt.vocab_size = 450;
  opt.progress = false;
  auto a = train_bpe(wc, opt), b = train_bpe(wc, opt);
  EXPECT_EQ(a->hash(), b->hash());
  auto ids = a->encode(text);
  EXPECT_EQ(a->decode(ids), text);
  EXPECT_LT(ids.size() * 2, text.size());  // 193 merges learned on this very text compress it
  aero::Rng rng(3);
  std::string raw(5000, '\0');
  for (char& c : raw) c = char(rng.below(256));
  EXPECT_EQ(a->decode(a->encode(raw)), raw);

  auto path = std::filesystem::temp_directory_path() / ("aero_trained_" + std::to_string(::getpid()) + ".json");
  a->save_hf_json(path.string());
  auto back = Tokenizer::load(path.string());
  std::filesystem::remove(path);
  EXPECT_EQ(back->hash(), a->hash());
  EXPECT_EQ(a->vocab_size(), opt.vocab_size);
  EXPECT_EQ(back->eot_id(), opt.vocab_size - 1);
  EXPECT_EQ(back->encode(text), ids);
}

TEST(BpeTrainer, RejectsTinyVocabulary) {
  WordCounts wc;
  count_words("abc", wc);
  BpeTrainOptions opt;
  opt.vocab_size = 100;
  EXPECT_THROW(train_bpe(wc, opt), aero::Error);
}
