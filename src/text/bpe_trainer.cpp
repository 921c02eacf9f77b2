#include "text/bpe_trainer.h"

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <thread>

#include "core/error.h"
#include "core/files.h"
#include "core/progress.h"
#include "text/unicode.h"

namespace aero::text {

void count_words(std::string_view text, WordCounts& counts) {
  gpt2_split(text, [&](std::string_view p) {
    auto it = counts.find(std::string(p));
    if (it != counts.end()) ++it->second;
    else counts.emplace(std::string(p), 1);
  });
}

namespace {
namespace fs = std::filesystem;

void list_inputs(const std::string& in, std::vector<std::string>& files) {
  std::error_code ec;
  if (fs::is_directory(in, ec)) {
    std::vector<std::string> found;
    for (auto& e : fs::recursive_directory_iterator(in, fs::directory_options::skip_permission_denied)) {
      if (!e.is_regular_file(ec)) continue;
      std::string p = e.path().string();
      if (p.ends_with(".py") || p.ends_with(".txt") || p.ends_with(".jsonl.xz")) found.push_back(p);
    }
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  } else {
    AERO_CHECK(fs::is_regular_file(in, ec), "tokenizer train: input ", in, " does not exist");
    files.push_back(in);
  }
}

// The documents of one input file.
std::vector<std::string> documents_of(const std::string& path) {
  if (!path.ends_with(".jsonl.xz")) return {read_file(path)};
  std::string all = read_xz_file(path);
  std::vector<std::string> docs;
  size_t pos = 0, line = 0;
  while (pos < all.size()) {
    size_t e = all.find('\n', pos);
    if (e == std::string::npos) e = all.size();
    ++line;
    if (e > pos) {
      try {
        docs.push_back(nlohmann::json::parse(all.begin() + pos, all.begin() + e).at("text").get<std::string>());
      } catch (const nlohmann::json::exception& ex) {
        fail(path, ":", line, ": expected a JSON object with a \"text\" string: ", ex.what());
      }
    }
    pos = e + 1;
  }
  return docs;
}
}  // namespace

WordCounts count_words_in_inputs(const std::vector<std::string>& inputs, const BpeTrainOptions& opt) {
  std::vector<std::string> files;
  for (const auto& in : inputs) list_inputs(in, files);
  AERO_CHECK(!files.empty(), "tokenizer train: no input files (*.py, *.txt, *.jsonl.xz) found");
  int nt = opt.threads > 0 ? opt.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<WordCounts> part(nt);
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> bytes{0};
  std::mutex mu;
  Progress prog("count words", double(files.size()), "files");
  std::atomic<size_t> done{0};
  auto work = [&](int t) {
    for (;;) {
      if (opt.max_bytes && bytes.load() >= opt.max_bytes) return;
      size_t i = next.fetch_add(1);
      if (i >= files.size()) return;
      for (const auto& doc : documents_of(files[i])) {
        count_words(doc, part[t]);
        bytes += doc.size();
      }
      size_t d = ++done;
      if (opt.progress) {
        std::lock_guard<std::mutex> lk(mu);
        prog.update(double(d), std::to_string(bytes.load() >> 20) + " MiB");
      }
    }
  };
  std::vector<std::thread> th;
  for (int t = 0; t < nt; ++t) th.emplace_back(work, t);
  for (auto& x : th) x.join();
  if (opt.progress) prog.finish(std::to_string(bytes.load() >> 20) + " MiB");
  WordCounts all = std::move(part[0]);
  for (int t = 1; t < nt; ++t)
    for (auto& [w, c] : part[t]) all[w] += c;
  return all;
}

std::unique_ptr<ByteLevelBpe> train_bpe(const WordCounts& counts, const BpeTrainOptions& opt,
                                        const std::string& name) {
  AERO_CHECK(opt.vocab_size >= 257, "tokenizer train: --vocab-size ", opt.vocab_size,
             " is below 257 (256 bytes + <|endoftext|>)");
  // Words in a fixed order so that training is deterministic.
  std::vector<std::pair<const std::string*, uint64_t>> sorted;
  sorted.reserve(counts.size());
  for (auto& [w, c] : counts) sorted.emplace_back(&w, c);
  std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return *a.first < *b.first; });
  std::vector<std::vector<uint32_t>> words(sorted.size());
  std::vector<uint64_t> freq(sorted.size());
  for (size_t i = 0; i < sorted.size(); ++i) {
    for (unsigned char c : *sorted[i].first) words[i].push_back(c);
    freq[i] = sorted[i].second;
  }
  std::vector<std::string> tokens(256);
  for (int b = 0; b < 256; ++b) tokens[b] = std::string(1, char(b));
  std::vector<std::pair<uint32_t, uint32_t>> merges;

  auto key = [](uint32_t a, uint32_t b) { return (uint64_t(a) << 32) | b; };
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<uint32_t>> where;
  pair_count.reserve(1 << 20);
  for (uint32_t w = 0; w < words.size(); ++w)
    for (size_t k = 0; k + 1 < words[w].size(); ++k) {
      uint64_t p = key(words[w][k], words[w][k + 1]);
      pair_count[p] += int64_t(freq[w]);
      auto& v = where[p];
      if (v.empty() || v.back() != w) v.push_back(w);
    }
  // Max-heap on (count, then the smaller pair); stale entries are re-checked when popped.
  using Entry = std::pair<int64_t, uint64_t>;
  auto cmp = [](const Entry& x, const Entry& y) {
    return x.first != y.first ? x.first < y.first : x.second > y.second;
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(cmp)> heap(cmp);
  for (auto& [p, c] : pair_count) heap.push({c, p});

  const uint32_t n_merges = opt.vocab_size - 257;  // tokens still to make
  std::unordered_map<std::string, uint32_t> token_id;
  for (uint32_t i = 0; i < 256; ++i) token_id.emplace(tokens[i], i);
  std::vector<uint32_t> last_step(words.size(), ~0u);
  Progress prog("train bpe", double(n_merges), "merges");
  std::vector<uint64_t> touched;
  while (tokens.size() < 256 + size_t(n_merges) && !heap.empty()) {
    auto [c, p] = heap.top();
    heap.pop();
    auto it = pair_count.find(p);
    int64_t actual = it == pair_count.end() ? 0 : it->second;
    if (actual != c) {
      if (actual > 0) heap.push({actual, p});
      continue;
    }
    if (uint64_t(c) < std::max<uint64_t>(opt.min_frequency, 1)) break;
    const uint32_t a = uint32_t(p >> 32), b = uint32_t(p);
    // A string can be reached by two merges (ab+c, a+bc); it keeps its first id.
    std::string joined = tokens[a] + tokens[b];
    auto known = token_id.find(joined);
    uint32_t id;
    if (known != token_id.end()) {
      id = known->second;
    } else {
      id = uint32_t(tokens.size());
      token_id.emplace(joined, id);
      tokens.push_back(std::move(joined));
    }
    merges.emplace_back(a, b);
    const uint32_t step = uint32_t(merges.size());
    std::vector<uint32_t> list = std::move(where[p]);
    where.erase(p);
    touched.clear();
    for (uint32_t w : list) {
      if (last_step[w] == step) continue;
      last_step[w] = step;
      auto& s = words[w];
      bool has = false;
      for (size_t k = 0; k + 1 < s.size(); ++k)
        if (s[k] == a && s[k + 1] == b) { has = true; break; }
      if (!has) continue;
      const int64_t f = int64_t(freq[w]);
      for (size_t k = 0; k + 1 < s.size(); ++k) pair_count[key(s[k], s[k + 1])] -= f;
      size_t o = 0;
      for (size_t k = 0; k < s.size();) {
        if (k + 1 < s.size() && s[k] == a && s[k + 1] == b) s[o++] = id, k += 2;
        else s[o++] = s[k++];
      }
      s.resize(o);
      for (size_t k = 0; k + 1 < s.size(); ++k) {
        uint64_t q = key(s[k], s[k + 1]);
        pair_count[q] += f;
        if (s[k] == id || s[k + 1] == id) {
          auto& v = where[q];
          if (v.empty() || v.back() != w) v.push_back(w);
          touched.push_back(q);
        }
      }
    }
    pair_count.erase(p);
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (uint64_t q : touched) heap.push({pair_count[q], q});
    if (opt.progress && (step % 256 == 0)) prog.update(double(tokens.size() - 256));
  }
  if (opt.progress) prog.finish();
  tokens.push_back("<|endoftext|>");
  uint32_t eot = uint32_t(tokens.size() - 1);
  return std::make_unique<ByteLevelBpe>(name, std::move(tokens), std::move(merges), eot);
}

}  // namespace aero::text
