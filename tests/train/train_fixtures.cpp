#include "train_fixtures.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "core/files.h"
#include "text/shard.h"

namespace aero::train::testing {

namespace fs = std::filesystem;

model::RunConfig small_config(const std::vector<std::string>& extra) {
  std::vector<std::string> sets = {
      "model.n_layer=2",      "model.n_head=2",        "model.d_model=32",
      "model.context=16",     "model.vocab_size=64",   "train.steps=10",
      "train.batch_size=4",   "train.seq_len=16",      "train.eval_every=5",
      "train.eval_batches=2", "train.checkpoint_every=1000", "train.warmup=2",
      "train.lr=0.003"};
  sets.insert(sets.end(), extra.begin(), extra.end());
  return model::build_run_config("", "tiny", "", sets);
}

std::string fresh_dir(const std::string& name) {
  // Per process: ctest runs tests in parallel processes, and several use the same fixture.
  fs::path p = fs::path(::testing::TempDir()) / ("aero_train_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::string real_text_shards(size_t max_bytes) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const char* dir : {"/usr/lib/python3.11", "/usr/lib/python3"}) {
    if (!fs::is_directory(dir, ec)) continue;
    for (auto& e : fs::directory_iterator(dir, ec))
      if (e.path().extension() == ".py") files.push_back(e.path());
    if (!files.empty()) break;
  }
  if (files.empty()) return "";
  std::sort(files.begin(), files.end());
  std::string text;
  for (auto& f : files) {
    if (text.size() >= max_bytes) break;
    text += read_file(f.string());
  }
  text.resize(std::min(text.size(), max_bytes));
  std::vector<uint32_t> toks(text.begin(), text.end());
  for (auto& t : toks) t &= 0xff;
  const size_t cut = toks.size() * 9 / 10;
  const std::string dir = fresh_dir("realtext_" + std::to_string(max_bytes));
  text::write_shard(dir + "/train-00000.tok", {toks.begin(), toks.begin() + long(cut)}, 0, 256, 0);
  text::write_shard(dir + "/valid-00000.tok", {toks.begin() + long(cut), toks.end()}, 0, 256, 0);
  return dir;
}

double unigram_baseline(const std::string& dir) {
  auto tr = text::TokenDataset::open(dir, "train"), va = text::TokenDataset::open(dir, "valid");
  std::vector<int32_t> a(tr.size()), b(va.size());
  tr.copy(0, tr.size(), a.data());
  va.copy(0, va.size(), b.data());
  std::vector<double> count(256, 1.0);
  for (int32_t t : a) count[size_t(t)] += 1;
  const double total = double(a.size()) + 256;
  double ce = 0;
  for (int32_t t : b) ce -= std::log(count[size_t(t)] / total);
  return ce / double(b.size());
}

}  // namespace aero::train::testing
