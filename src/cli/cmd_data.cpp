// aero data code | books: build token-shard corpora (docs/data.md).
#include <cstdio>

#include "cli/registry.h"
#include "core/error.h"
#include "text/corpus.h"

namespace {

void print_summary(const nlohmann::json& m, const std::string& out) {
  for (auto& [name, s] : m["splits"].items())
    std::fprintf(stderr, "data: %-5s %12llu tokens  (%s)\n", name.c_str(),
                 (unsigned long long)s["tokens"].get<uint64_t>(), s.contains("files")
                     ? (std::to_string(s["files"].get<uint64_t>()) + " files").c_str()
                     : (std::to_string(s["books"].get<uint64_t>()) + " books").c_str());
  std::fprintf(stderr, "data: wrote %s/manifest.json\n", out.c_str());
}

aero::cli::Registrar reg("data", [](CLI::App& app) {
  auto* data = app.add_subcommand("data", "Build tokenized corpora (token shards + manifest.json)");
  data->require_subcommand(1);

  auto* code = data->add_subcommand("code", "Python code from Debian packages (or a directory), cleaned CodeParrot-style");
  auto o = std::make_shared<aero::text::CodeCorpusOptions>();
  auto list = std::make_shared<std::string>("configs/code_packages.txt");
  auto smoke = std::make_shared<bool>(false);
  auto out_set = std::make_shared<std::string>();
  code->add_option("--packages", *list, "File of Debian package names (one a line)");
  code->add_flag("--smoke", *smoke, "Use configs/code_packages_smoke.txt (small; out defaults to data/code-smoke)");
  code->add_option("--from-dir", o->from_dir, "Build from every *.py under this directory instead");
  code->add_option("--out", *out_set, "Output directory (default data/code)");
  code->add_option("--cache", o->cache, "Cache of .deb files, unpacked trees and per-package tokens");
  code->add_option("--tokenizer", o->tokenizer, "gpt2 or a tokenizer.json");
  code->add_option("--threads", o->threads, "Tokenizer threads (0 = all cores)");
  code->add_option("--shard-tokens", o->shard_tokens, "Tokens per shard");
  code->add_option("--valid-frac", o->valid_frac, "Fraction of files (by path hash) in valid");
  code->add_option("--test-frac", o->test_frac, "Fraction of files (by path hash) in test");
  code->callback([=] {
    aero::text::CodeCorpusOptions opt = *o;
    opt.out = !out_set->empty() ? *out_set : *smoke ? "data/code-smoke" : "data/code";
    if (opt.from_dir.empty())
      opt.packages = aero::text::read_package_list(*smoke ? "configs/code_packages_smoke.txt" : *list);
    print_summary(aero::text::build_code_corpus(opt), opt.out);
  });

  auto* books = data->add_subcommand("books", "Books (JSONL.xz, book-disjoint splits) into shards");
  auto b = std::make_shared<aero::text::BooksCorpusOptions>();
  b->src = "../shared/data/books";
  b->out = "data/books";
  books->add_option("--src", b->src, "Directory of <split>-NN.jsonl.xz");
  books->add_option("--out", b->out, "Output directory");
  books->add_option("--tokenizer", b->tokenizer, "gpt2 or a tokenizer.json");
  books->add_option("--threads", b->threads, "Tokenizer threads (0 = all cores)");
  books->callback([=] { print_summary(aero::text::build_books_corpus(*b), b->out); });
});

}  // namespace
