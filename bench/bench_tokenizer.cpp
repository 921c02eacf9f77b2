// GPT-2 encoding throughput, single thread (Google Benchmark), on a fixed text: by default the
// concatenation of /usr/lib/python3.11/*.py in name order (Debian 12's standard library).
// tiktoken's single-thread figure on the same file comes from bench/tokenizer_peer.py.
//
//   build-data/bench_tokenizer [--text FILE] [--tokenizer gpt2|PATH] [google-benchmark flags]
//
// Cases: Encode (the word cache warm, as in a corpus build), EncodeColdCache (a fresh
// tokenizer each time: every distinct word goes through BPE once), BpeNoCache (BPE of every
// piece, no cache), PreTokenize (the regex split alone).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/files.h"
#include "text/bpe.h"
#include "text/unicode.h"

namespace {
std::string g_text, g_tok = "gpt2";

std::unique_ptr<aero::text::ByteLevelBpe> load() {
  auto t = aero::text::Tokenizer::load(g_tok);
  return std::unique_ptr<aero::text::ByteLevelBpe>(static_cast<aero::text::ByteLevelBpe*>(t.release()));
}

void Encode(benchmark::State& st) {
  auto tok = load();
  std::vector<uint32_t> ids;
  tok->encode_append(g_text, ids);  // warm the cache
  for (auto _ : st) {
    ids.clear();
    tok->encode_append(g_text, ids);
    benchmark::DoNotOptimize(ids.data());
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(g_text.size()));
  st.counters["tokens"] = double(ids.size());
}

void EncodeColdCache(benchmark::State& st) {
  for (auto _ : st) {
    st.PauseTiming();
    auto tok = load();
    st.ResumeTiming();
    auto ids = tok->encode(g_text);
    benchmark::DoNotOptimize(ids.data());
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(g_text.size()));
}

void BpeNoCache(benchmark::State& st) {
  auto tok = load();
  std::vector<uint32_t> ids;
  for (auto _ : st) {
    ids.clear();
    aero::text::gpt2_split(g_text, [&](std::string_view p) { tok->bpe_word(p, ids); });
    benchmark::DoNotOptimize(ids.data());
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(g_text.size()));
}

void PreTokenize(benchmark::State& st) {
  for (auto _ : st) {
    size_t n = 0;
    aero::text::gpt2_split(g_text, [&](std::string_view) { ++n; });
    benchmark::DoNotOptimize(n);
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(g_text.size()));
}

std::string default_text() {
  std::vector<std::string> files;
  for (auto& e : std::filesystem::directory_iterator("/usr/lib/python3.11"))
    if (e.path().extension() == ".py") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  std::string s;
  for (auto& f : files) s += aero::read_file(f);
  return s;
}
}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> rest = {argv[0]};
  std::string text_path;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--text") && i + 1 < argc) text_path = argv[++i];
    else if (!std::strcmp(argv[i], "--tokenizer") && i + 1 < argc) g_tok = argv[++i];
    else rest.push_back(argv[i]);
  }
  try {
    g_text = text_path.empty() ? default_text() : aero::read_file(text_path);
    load();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
    return 1;
  }
  std::printf("text: %s, %.2f MB\n", text_path.empty() ? "/usr/lib/python3.11/*.py" : text_path.c_str(),
              g_text.size() / 1e6);
  benchmark::RegisterBenchmark("Encode", Encode)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("EncodeColdCache", EncodeColdCache)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("BpeNoCache", BpeNoCache)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("PreTokenize", PreTokenize)->Unit(benchmark::kMillisecond);
  int n = int(rest.size());
  benchmark::Initialize(&n, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
