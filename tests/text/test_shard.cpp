#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/files.h"
#include "text/shard.h"

using namespace aero;
using namespace aero::text;

namespace {
std::string tmpdir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("aero_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}
}  // namespace

TEST(Shard, SplitReadsAsOneStreamAcrossShards) {
  std::string d = tmpdir("shard");
  std::vector<uint32_t> a = {1, 2, 3, 4, 5}, b = {6, 7, 8};
  write_shard(d + "/train-00000.tok", a, 42, 100, 0);
  write_shard(d + "/train-00001.tok", b, 42, 100, 0);
  auto ds = TokenDataset::open(d, "train", 42);
  ASSERT_EQ(ds.size(), 8u);
  std::vector<int32_t> out(6);
  ds.copy(2, 6, out.data());
  EXPECT_EQ(out, (std::vector<int32_t>{3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(ds.num_chunks(3), 2u);
  EXPECT_THROW(TokenDataset::open(d, "train", 43), Error);
  EXPECT_THROW(TokenDataset::open(d, "valid"), Error);
}

TEST(Shard, WideVocabulariesUse32BitTokens) {
  std::string d = tmpdir("shard32");
  std::vector<uint32_t> a = {70000, 1, 69999};
  write_shard(d + "/x-00000.tok", a, 1, 70001, 0);
  auto s = TokenShard::open(d + "/x-00000.tok");
  EXPECT_EQ(s->info().token_bytes, 4u);
  EXPECT_EQ((*s)[0], 70000u);
  EXPECT_THROW(write_shard(d + "/y.tok", a, 1, 100, 0), Error);
}

TEST(Shard, TruncatedOrCorruptShardIsRefusedWithItsName) {
  std::string d = tmpdir("shardbad");
  std::vector<uint32_t> a(1000, 7);
  std::string p = d + "/train-00000.tok";
  write_shard(p, a, 1, 100, 0);
  std::string bytes = read_file(p);
  write_file_atomic(p, bytes.substr(0, bytes.size() - 10));
  try {
    TokenShard::open(p);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
  bytes[200] ^= 1;
  write_file_atomic(p, bytes);
  EXPECT_THROW(TokenShard::open(p), Error);
}
