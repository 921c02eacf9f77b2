// GPT-2 byte-level BPE: equality with the reference encodings of gpt-tokenizer@4.0.0
// (TestPlans.txt, r50k_base = GPT-2), the pre-tokenizer regex on hand-worked cases, lossless
// round trips on random and real bytes, tokenizer.json save/load, and clear errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "core/rng.h"
#include "text/bpe.h"
#include "text/unicode.h"

using namespace aero::text;
namespace fs = std::filesystem;

namespace {
const std::string kSrc = AERO_SOURCE_DIR;
const std::string kGpt2Dir = kSrc + "/data/tokenizers/gpt2";

const ByteLevelBpe& gpt2() {
  static std::unique_ptr<ByteLevelBpe> t = ByteLevelBpe::load_gpt2_dir(kGpt2Dir);
  return *t;
}

std::vector<std::string> split(std::string_view s) {
  std::vector<std::string> v;
  gpt2_split(s, [&](std::string_view p) { v.emplace_back(p); });
  return v;
}

std::vector<uint32_t> parse_ids(std::string s) {
  std::vector<uint32_t> ids;
  for (char& c : s)
    if (c == '[' || c == ']' || c == ',') c = ' ';
  std::istringstream is(s);
  uint32_t v;
  while (is >> v) ids.push_back(v);
  return ids;
}
}  // namespace

TEST(Gpt2Tokenizer, EveryR50kCaseOfGptTokenizerTestPlans) {
  const std::string path = kSrc + "/third_party/npm/node_modules/gpt-tokenizer/data/TestPlans.txt";
  std::string text = aero::read_file(path);
  // Records: "EncodingName: X\nSample: S\nEncoded: [ids]\n", separated by blank lines.
  std::istringstream in(text);
  std::string line, enc, sample;
  int cases = 0;
  while (std::getline(in, line)) {
    if (line.starts_with("EncodingName: ")) enc = line.substr(14);
    else if (line.starts_with("Sample: ")) sample = line.substr(8);
    else if (line.starts_with("Encoded: ") && enc == "r50k_base") {
      std::vector<uint32_t> want = parse_ids(line.substr(9));
      EXPECT_EQ(gpt2().encode(sample), want) << "sample: " << sample;
      EXPECT_EQ(gpt2().decode(want), sample);
      ++cases;
    }
  }
  EXPECT_EQ(cases, 64) << "TestPlans.txt format changed? " << path;
}

TEST(Gpt2Tokenizer, KnownIdsAndVocabulary) {
  EXPECT_EQ(gpt2().vocab_size(), 50257u);
  EXPECT_EQ(gpt2().eot_id(), 50256u);
  EXPECT_EQ(gpt2().merges().size(), 50000u);
  EXPECT_EQ(gpt2().token_bytes(31373), "hello");
  EXPECT_EQ(gpt2().token_bytes(220), " ");
  // "<|endoftext|>" in ordinary text is plain text, never the special token.
  auto ids = gpt2().encode("a<|endoftext|>b");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 50256u), 0);
  EXPECT_EQ(gpt2().decode(ids), "a<|endoftext|>b");
  EXPECT_EQ(gpt2().decode({50256}), "<|endoftext|>");
}

TEST(Gpt2PreTokenizer, RegexAlternativesInOrder) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split("I'll don't 're"), (V{"I", "'ll", " don", "'t", " '", "re"}));
  EXPECT_EQ(split("Hello  world"), (V{"Hello", " ", " world"}));
  EXPECT_EQ(split("x\n\n  y"), (V{"x", "\n\n ", " y"}));
  EXPECT_EQ(split("x\ny"), (V{"x", "\n", "y"}));
  EXPECT_EQ(split("a  "), (V{"a", "  "}));
  EXPECT_EQ(split("def f(x=12):\n    return x"),
            (V{"def", " f", "(", "x", "=", "12", "):", "\n   ", " return", " x"}));
  EXPECT_EQ(split(" 123abc!!"), (V{" 123", "abc", "!!"}));
  EXPECT_EQ(split("\t\tx"), (V{"\t", "\t", "x"}));
  EXPECT_EQ(split("'S"), (V{"'", "S"}));  // contractions are case-sensitive
  // Unicode classes: é is a letter, ٣ a number, U+3000 white space, € other.
  EXPECT_EQ(split("caf\u00e9 \u0663\u0663\u3000\u20ac!"),
            (V{"caf\u00e9", " \u0663\u0663", "\u3000", "\u20ac!"}));
  // Bytes that are not UTF-8 are "other" characters, one byte each.
  EXPECT_EQ(split("a\xff\xfe b"), (V{"a", "\xff\xfe", " b"}));
}

TEST(Gpt2PreTokenizer, UnicodeClassesFromTables) {
  EXPECT_EQ(char_class('a'), CharClass::Letter);
  EXPECT_EQ(char_class(0x4E16), CharClass::Letter);   // CJK ideograph (in a First/Last range)
  EXPECT_EQ(char_class(0xAC00), CharClass::Letter);   // Hangul syllable (range)
  EXPECT_EQ(char_class(0x1D7CE), CharClass::Number);  // MATHEMATICAL BOLD DIGIT ZERO
  EXPECT_EQ(char_class(0x2167), CharClass::Number);   // ROMAN NUMERAL EIGHT (Nl)
  EXPECT_EQ(char_class(0xBD), CharClass::Number);     // VULGAR FRACTION ONE HALF (No)
  EXPECT_EQ(char_class(0xA0), CharClass::Space);
  EXPECT_EQ(char_class(0x85), CharClass::Space);
  EXPECT_EQ(char_class(0x200B), CharClass::Other);    // zero width space is not White_Space
  EXPECT_EQ(char_class(0x1F30D), CharClass::Other);   // emoji
  EXPECT_EQ(char_class(0x0301), CharClass::Other);    // combining accent (Mn)
}

TEST(Gpt2Tokenizer, RoundTripRandomBytesAndUtf8) {
  aero::Rng rng(7);
  const char* pieces[] = {" ", "  ", "\n", "\t", "a", "Z", "9", "'s", "'ll", "\u00e9", "\u4e16",
                          "\U0001F30D", "\u3000", "\u00a0", "!", "<|endoftext|>", "\r\n", "_"};
  for (int trial = 0; trial < 200; ++trial) {
    std::string raw(rng.below(300), '\0');
    for (char& c : raw) c = char(rng.below(256));
    EXPECT_EQ(gpt2().decode(gpt2().encode(raw)), raw);
    std::string u;
    size_t n = rng.below(200);
    for (size_t i = 0; i < n; ++i) u += pieces[rng.below(std::size(pieces))];
    auto ids = gpt2().encode(u);
    EXPECT_EQ(gpt2().decode(ids), u);
    for (uint32_t id : ids) EXPECT_LT(id, 50256u);
  }
}

TEST(Gpt2Tokenizer, RoundTripRealFilesAndCacheAgreesWithPlainBpe) {
  int files = 0;
  for (const char* f : {"data/tokenizers/gpt2/vocab.bpe", "src/text/bpe.cpp", "src/text/unicode.cpp",
                        "CMakeLists.txt", "third_party/npm/node_modules/gpt-tokenizer/data/TestPlans.txt"}) {
    std::string text = aero::read_file(kSrc + "/" + f);
    auto ids = gpt2().encode(text);
    ASSERT_EQ(gpt2().decode(ids), text) << f;
    EXPECT_LT(ids.size(), text.size()) << f;
    // The cached path must give what BPE of each piece gives without the cache.
    std::vector<uint32_t> plain;
    gpt2_split(text, [&](std::string_view p) { gpt2().bpe_word(p, plain); });
    EXPECT_EQ(ids, plain) << f;
    ++files;
  }
  EXPECT_EQ(files, 5);
}

TEST(Gpt2Tokenizer, HashIsTheDocumentedOne) {
  // docs/formats.md documents GPT-2's hash; shards written earlier carry it, so a change of
  // the hash function would orphan them.
  EXPECT_EQ(gpt2().hash(), 0xbd6033949ec1ca1dULL);
}

TEST(Gpt2Tokenizer, RoundTripSharedBooksWhenPresent) {
  const std::string path = kSrc + "/../shared/data/books/valid-00.jsonl.xz";
  if (!fs::exists(path)) GTEST_SKIP() << "no " << path << " (../shared is not on CI machines)";
  std::string all = aero::read_xz_file(path);
  size_t e = all.find('\n');
  std::string text = nlohmann::json::parse(all.substr(0, e)).at("text").get<std::string>();
  auto ids = gpt2().encode(text);
  EXPECT_EQ(gpt2().decode(ids), text);
  EXPECT_GT(text.size(), 3 * ids.size());  // English prose: over 3 characters per token
}

TEST(Gpt2Tokenizer, HfJsonRoundTripKeepsEncodingAndHash) {
  fs::path tmp = fs::temp_directory_path() / ("aero_tok_" + std::to_string(::getpid()) + ".json");
  gpt2().save_hf_json(tmp.string());
  auto back = ByteLevelBpe::load_hf_json(tmp.string());
  fs::remove(tmp);
  EXPECT_EQ(back->vocab_size(), gpt2().vocab_size());
  EXPECT_EQ(back->eot_id(), gpt2().eot_id());
  EXPECT_EQ(back->hash(), gpt2().hash());
  std::string text = aero::read_file(kSrc + "/src/text/bpe.cpp");
  EXPECT_EQ(back->encode(text), gpt2().encode(text));
}

TEST(Gpt2Tokenizer, ClearErrors) {
  try {
    ByteLevelBpe::load_gpt2_dir("/nonexistent/gpt2");
    FAIL();
  } catch (const aero::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/gpt2"), std::string::npos) << e.what();
  }
  fs::path tmp = fs::temp_directory_path() / ("aero_bad_" + std::to_string(::getpid()) + ".json");
  aero::write_file_atomic(tmp.string(), "{\"model\": {\"type\": \"Unigram\"}}");
  try {
    Tokenizer::load(tmp.string());
    FAIL();
  } catch (const aero::Error& e) {
    EXPECT_NE(std::string(e.what()).find(tmp.string()), std::string::npos) << e.what();
  }
  fs::remove(tmp);
  EXPECT_THROW(gpt2().decode({60000}), aero::Error);
  EXPECT_THROW(Tokenizer::load("no-such-tokenizer"), aero::Error);
}
