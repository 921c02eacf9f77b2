// aero tokenize: text on stdin -> token ids (space-separated) on stdout, or back with --decode.
// aero tokenizer train: learn a byte-level BPE from files and write a tokenizer.json.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <sstream>

#include "cli/registry.h"
#include "core/error.h"
#include "core/files.h"
#include "text/bpe.h"
#include "text/bpe_trainer.h"

namespace {

std::string read_stdin() {
  std::string s;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) s.append(buf, n);
  return s;
}

aero::cli::Registrar reg_tokenize("tokenize", [](CLI::App& app) {
  auto* sub = app.add_subcommand("tokenize", "Encode stdin to token ids (or decode ids with --decode)");
  auto tok = std::make_shared<std::string>("gpt2");
  auto decode = std::make_shared<bool>(false);
  auto special = std::make_shared<bool>(false);
  sub->add_option("--tokenizer", *tok, "gpt2, a tokenizer.json, or a directory with either");
  sub->add_flag("--decode", *decode, "Read space-separated ids, write the text");
  sub->add_flag("--special", *special,
                "Read <|endoftext|> in the input as the end-of-text token (default: plain text)");
  sub->callback([=] {
    auto t = aero::text::Tokenizer::load(*tok);
    std::string in = read_stdin();
    if (*decode) {
      std::vector<uint32_t> ids;
      std::istringstream is(in);
      std::string w;
      while (is >> w) {
        char* end = nullptr;
        unsigned long v = std::strtoul(w.c_str(), &end, 10);
        AERO_CHECK(end && *end == 0 && !w.empty() && w[0] != '-', "tokenize --decode: \"", w,
                   "\" on stdin is not a token id");
        ids.push_back(uint32_t(v));
      }
      std::string text = t->decode(ids);
      std::fwrite(text.data(), 1, text.size(), stdout);
      return;
    }
    std::vector<uint32_t> ids;
    if (*special) {
      const std::string eot = "<|endoftext|>";
      size_t pos = 0;
      for (;;) {
        size_t e = in.find(eot, pos);
        auto part = t->encode(std::string_view(in).substr(pos, e == std::string::npos ? e : e - pos));
        ids.insert(ids.end(), part.begin(), part.end());
        if (e == std::string::npos) break;
        ids.push_back(t->eot_id());
        pos = e + eot.size();
      }
    } else {
      ids = t->encode(in);
    }
    std::string out;
    out.reserve(ids.size() * 6);
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) out.push_back(' ');
      out += std::to_string(ids[i]);
    }
    out.push_back('\n');
    std::fwrite(out.data(), 1, out.size(), stdout);
  });
});

aero::cli::Registrar reg_tokenizer("tokenizer", [](CLI::App& app) {
  auto* sub = app.add_subcommand("tokenizer", "Tokenizer tools");
  sub->require_subcommand(1);
  auto* train = sub->add_subcommand("train", "Learn a byte-level BPE (GPT-2 pre-tokenization) from files");
  auto opt = std::make_shared<aero::text::BpeTrainOptions>();
  auto inputs = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  train->add_option("--vocab-size", opt->vocab_size, "Vocabulary size, <|endoftext|> included")
      ->required();
  train->add_option("--input", *inputs,
                    "Files or directories (recursively: *.py, *.txt, *.jsonl.xz with a \"text\" field)")
      ->required();
  train->add_option("--out", *out, "tokenizer.json to write")->required();
  train->add_option("--max-bytes", opt->max_bytes, "Read at most this many bytes of input");
  train->add_option("--min-frequency", opt->min_frequency, "Stop at pairs seen fewer times");
  train->add_option("--threads", opt->threads, "Threads for counting words (0 = all cores)");
  train->callback([=] {
    auto words = aero::text::count_words_in_inputs(*inputs, *opt);
    auto bpe = aero::text::train_bpe(words, *opt);
    bpe->save_hf_json(*out);
    std::fprintf(stderr, "tokenizer train: %u tokens (%zu merges) -> %s\n", bpe->vocab_size(),
                 bpe->merges().size(), out->c_str());
  });
});

}  // namespace
