#include "text/bpe.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/error.h"
#include "core/files.h"
#include "text/unicode.h"

namespace aero::text {

// ---- GPT-2 byte <-> unicode mapping ----

namespace {
struct ByteMap {
  uint32_t to_cp[256];
  int16_t from_cp[512];
  ByteMap() {
    std::fill(std::begin(from_cp), std::end(from_cp), int16_t(-1));
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      to_cp[b] = printable ? uint32_t(b) : next++;
      from_cp[to_cp[b]] = int16_t(b);
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

void append_utf8(std::string& s, uint32_t cp) {
  if (cp < 0x80) {
    s.push_back(char(cp));
  } else if (cp < 0x800) {
    s.push_back(char(0xC0 | (cp >> 6)));
    s.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    s.push_back(char(0xE0 | (cp >> 12)));
    s.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    s.push_back(char(0x80 | (cp & 0x3F)));
  }
}

constexpr const char* kEot = "<|endoftext|>";
}  // namespace

uint32_t byte_to_unicode(uint8_t b) { return byte_map().to_cp[b]; }

std::string bytes_to_unicode_string(std::string_view bytes) {
  std::string s;
  s.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) append_utf8(s, byte_map().to_cp[b]);
  return s;
}

std::string unicode_string_to_bytes(std::string_view s, const std::string& what) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    i += utf8_decode(s, i, cp);
    if (cp >= 512 || byte_map().from_cp[cp] < 0)
      fail(what, ": token \"", std::string(s), "\" has a character (U+", std::hex, cp,
           ") that is not in GPT-2's byte-level alphabet");
    out.push_back(char(byte_map().from_cp[cp]));
  }
  return out;
}

// ---- merge table: open addressing over (left id, right id) ----

struct ByteLevelBpe::MergeTable {
  struct Slot {
    uint64_t key;
    uint32_t rank, result;
  };
  std::vector<Slot> slots;
  uint64_t mask = 0;
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  static uint64_t mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
  }
  explicit MergeTable(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n + 16) cap <<= 1;
    slots.assign(cap, Slot{kEmpty, 0, 0});
    mask = cap - 1;
  }
  void insert(uint32_t a, uint32_t b, uint32_t rank, uint32_t result) {
    uint64_t key = (uint64_t(a) << 32) | b;
    for (uint64_t i = mix(key) & mask;; i = (i + 1) & mask) {
      if (slots[i].key == kEmpty) {
        slots[i] = {key, rank, result};
        return;
      }
      if (slots[i].key == key) return;  // a repeated merge keeps its first (lowest) rank
    }
  }
  const Slot* find(uint32_t a, uint32_t b) const {
    uint64_t key = (uint64_t(a) << 32) | b;
    for (uint64_t i = mix(key) & mask;; i = (i + 1) & mask) {
      const Slot& s = slots[i];
      if (s.key == key) return &s;
      if (s.key == kEmpty) return nullptr;
    }
  }
};

namespace {
std::atomic<uint64_t> g_serial{1};

// Per-thread cache of encoded words, one per tokenizer instance in use on the thread.
struct StrHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
struct WordCache {
  std::unordered_map<std::string, std::pair<uint32_t, uint32_t>, StrHash, std::equal_to<>> map;
  std::vector<uint32_t> pool;
  void clear_if_big() {
    if (map.size() > (1u << 20) || pool.size() > (1u << 24)) {
      map.clear();
      pool.clear();
    }
  }
};
WordCache& cache_for(uint64_t serial) {
  thread_local std::unordered_map<uint64_t, WordCache> caches;
  auto it = caches.find(serial);
  if (it != caches.end()) return it->second;
  if (caches.size() >= 4) caches.clear();  // tokenizers come and go rarely; keep memory bounded
  return caches[serial];
}
}  // namespace

ByteLevelBpe::ByteLevelBpe(std::string name, std::vector<std::string> tokens,
                           std::vector<std::pair<uint32_t, uint32_t>> merges, uint32_t eot_id)
    : name_(std::move(name)), tokens_(std::move(tokens)), merges_(std::move(merges)), eot_(eot_id) {
  AERO_CHECK(eot_ < tokens_.size(), name_, ": end-of-text id ", eot_, " is outside the vocabulary");
  std::unordered_map<std::string_view, uint32_t> by_bytes;
  by_bytes.reserve(tokens_.size());
  for (uint32_t i = 0; i < tokens_.size(); ++i)
    if (i != eot_) by_bytes.emplace(tokens_[i], i);
  for (int b = 0; b < 256; ++b) {
    char c = char(b);
    auto it = by_bytes.find(std::string_view(&c, 1));
    AERO_CHECK(it != by_bytes.end(), name_, ": the vocabulary has no token for byte ", b,
               " (a byte-level BPE needs all 256)");
    byte_id_[b] = it->second;
  }
  table_ = new MergeTable(merges_.size());
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const auto& t : tokens_) {
    uint32_t len = uint32_t(t.size());
    h = fnv1a64(std::string_view(reinterpret_cast<const char*>(&len), 4), h);
    h = fnv1a64(t, h);
  }
  for (uint32_t r = 0; r < merges_.size(); ++r) {
    auto [a, b] = merges_[r];
    AERO_CHECK(a < tokens_.size() && b < tokens_.size(), name_, ": merge ", r,
               " refers to a token outside the vocabulary");
    std::string joined = tokens_[a] + tokens_[b];
    auto it = by_bytes.find(joined);
    AERO_CHECK(it != by_bytes.end(), name_, ": merge ", r, " (\"",
               bytes_to_unicode_string(tokens_[a]), "\" + \"", bytes_to_unicode_string(tokens_[b]),
               "\") makes a token that is not in the vocabulary");
    table_->insert(a, b, r, it->second);
    uint32_t ab[2] = {a, b};
    h = fnv1a64(std::string_view(reinterpret_cast<const char*>(ab), 8), h);
  }
  hash_ = h;
  serial_ = g_serial.fetch_add(1);
}

ByteLevelBpe::~ByteLevelBpe() { delete table_; }

void ByteLevelBpe::bpe_word(std::string_view piece, std::vector<uint32_t>& out) const {
  thread_local std::vector<uint32_t> parts;
  parts.resize(piece.size());
  for (size_t i = 0; i < piece.size(); ++i) parts[i] = byte_id_[uint8_t(piece[i])];
  size_t n = parts.size();
  while (n > 1) {
    uint32_t best = ~0u, a = 0, b = 0, result = 0;
    for (size_t k = 0; k + 1 < n; ++k) {
      const MergeTable::Slot* s = table_->find(parts[k], parts[k + 1]);
      if (s && s->rank < best) {
        best = s->rank;
        a = parts[k];
        b = parts[k + 1];
        result = s->result;
      }
    }
    if (best == ~0u) break;
    // Merge every occurrence of (a, b), left to right, as GPT-2's encoder.py does.
    size_t w = 0;
    for (size_t k = 0; k < n;) {
      if (k + 1 < n && parts[k] == a && parts[k + 1] == b) {
        parts[w++] = result;
        k += 2;
      } else {
        parts[w++] = parts[k++];
      }
    }
    n = w;
  }
  out.insert(out.end(), parts.begin(), parts.begin() + n);
}

void ByteLevelBpe::encode_append(std::string_view text, std::vector<uint32_t>& out) const {
  WordCache& cache = cache_for(serial_);
  gpt2_split(text, [&](std::string_view piece) {
    if (piece.size() == 1) {
      out.push_back(byte_id_[uint8_t(piece[0])]);
      return;
    }
    auto it = cache.map.find(piece);
    if (it != cache.map.end()) {
      auto [off, len] = it->second;
      out.insert(out.end(), cache.pool.begin() + off, cache.pool.begin() + off + len);
      return;
    }
    size_t before = out.size();
    bpe_word(piece, out);
    if (piece.size() <= 256) {
      cache.clear_if_big();
      uint32_t off = uint32_t(cache.pool.size());
      cache.pool.insert(cache.pool.end(), out.begin() + before, out.end());
      cache.map.emplace(std::string(piece), std::make_pair(off, uint32_t(out.size() - before)));
    }
  });
}

std::vector<uint32_t> ByteLevelBpe::encode(std::string_view text) const {
  std::vector<uint32_t> out;
  out.reserve(text.size() / 3 + 16);
  encode_append(text, out);
  return out;
}

std::string ByteLevelBpe::decode(const std::vector<uint32_t>& ids) const {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) {
    AERO_CHECK(ids[i] < tokens_.size(), name_, ": cannot decode token id ", ids[i], " at position ",
               i, ": the vocabulary has ", tokens_.size(), " tokens");
    s += tokens_[ids[i]];
  }
  return s;
}

// ---- loading and saving ----

std::unique_ptr<ByteLevelBpe> ByteLevelBpe::load_gpt2_dir(const std::string& dir) {
  const std::string enc_path = dir + "/encoder.json", bpe_path = dir + "/vocab.bpe";
  AERO_CHECK(file_exists(enc_path) && file_exists(bpe_path), "GPT-2 tokenizer files not found in ",
             dir, " (need encoder.json and vocab.bpe): run scripts/setup.sh, or set AERO_GPT2_DIR");
  nlohmann::json enc;
  try {
    enc = nlohmann::json::parse(read_file(enc_path));
  } catch (const nlohmann::json::exception& e) {
    fail(enc_path, ": not valid JSON: ", e.what());
  }
  AERO_CHECK(enc.is_object(), enc_path, ": expected a JSON object of token -> id");
  std::vector<std::string> tokens(enc.size());
  std::vector<bool> seen(enc.size(), false);
  std::unordered_map<std::string, uint32_t> by_bytes;
  uint32_t eot = ~0u;
  for (auto it = enc.begin(); it != enc.end(); ++it) {
    AERO_CHECK(it.value().is_number_unsigned() && it.value().get<uint64_t>() < enc.size(), enc_path,
               ": id of \"", it.key(), "\" must be an integer below ", enc.size());
    uint32_t id = it.value().get<uint32_t>();
    AERO_CHECK(!seen[id], enc_path, ": id ", id, " is used twice");
    seen[id] = true;
    if (it.key() == kEot) {
      tokens[id] = kEot;
      eot = id;
      continue;
    }
    tokens[id] = unicode_string_to_bytes(it.key(), enc_path);
    by_bytes[tokens[id]] = id;
  }
  AERO_CHECK(eot != ~0u, enc_path, ": no <|endoftext|> token");
  std::string text = read_file(bpe_path);
  std::vector<std::pair<uint32_t, uint32_t>> merges;
  size_t pos = 0, line_no = 0;
  while (pos < text.size()) {
    size_t e = text.find('\n', pos);
    if (e == std::string::npos) e = text.size();
    std::string_view line(text.data() + pos, e - pos);
    pos = e + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.starts_with("#version")) continue;
    size_t sp = line.find(' ');
    AERO_CHECK(sp != std::string_view::npos && line.find(' ', sp + 1) == std::string_view::npos,
               bpe_path, ":", line_no, ": expected two tokens separated by one space");
    std::string where = bpe_path + ":" + std::to_string(line_no);
    auto a = by_bytes.find(unicode_string_to_bytes(line.substr(0, sp), where));
    auto b = by_bytes.find(unicode_string_to_bytes(line.substr(sp + 1), where));
    AERO_CHECK(a != by_bytes.end() && b != by_bytes.end(), where,
               ": merge refers to a token that is not in encoder.json");
    merges.emplace_back(a->second, b->second);
  }
  return std::make_unique<ByteLevelBpe>("gpt2", std::move(tokens), std::move(merges), eot);
}

std::unique_ptr<ByteLevelBpe> ByteLevelBpe::load_hf_json(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": not valid JSON: ", e.what());
  }
  AERO_CHECK(j.is_object() && j.contains("model") && j["model"].is_object(), path,
             ": not a tokenizer.json (no \"model\" object)");
  const auto& model = j["model"];
  AERO_CHECK(model.value("type", std::string("BPE")) == "BPE", path, ": model.type is \"",
             model.value("type", std::string()), "\"; only BPE is supported");
  const auto& pre = j.contains("pre_tokenizer") ? j["pre_tokenizer"] : nlohmann::json();
  AERO_CHECK(pre.is_object() && pre.value("type", std::string()) == "ByteLevel" &&
                 !pre.value("add_prefix_space", false) && pre.value("use_regex", true),
             path, ": pre_tokenizer must be ByteLevel (add_prefix_space false, use_regex true)");
  AERO_CHECK(model.contains("vocab") && model["vocab"].is_object(), path, ": model.vocab missing");
  AERO_CHECK(model.contains("merges") && model["merges"].is_array(), path, ": model.merges missing");
  std::vector<std::pair<std::string, uint32_t>> entries;
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    AERO_CHECK(it.value().is_number_unsigned(), path, ": model.vocab[\"", it.key(),
               "\"] is not a non-negative integer");
    entries.emplace_back(it.key(), it.value().get<uint32_t>());
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array())
    for (const auto& t : j["added_tokens"])
      entries.emplace_back(t.at("content").get<std::string>(), t.at("id").get<uint32_t>());
  uint32_t n = 0;
  for (const auto& e : entries) n = std::max(n, e.second + 1);
  std::vector<std::string> tokens(n);
  std::vector<bool> seen(n, false);
  std::unordered_map<std::string, uint32_t> by_text;
  uint32_t eot = ~0u;
  for (const auto& [text, id] : entries) {
    if (seen[id]) {
      AERO_CHECK(by_text.count(text) && by_text[text] == id, path, ": id ", id, " is used twice");
      continue;
    }
    seen[id] = true;
    by_text[text] = id;
    if (text == kEot) {
      tokens[id] = kEot;
      eot = id;
    } else {
      tokens[id] = unicode_string_to_bytes(text, path);
    }
  }
  for (uint32_t i = 0; i < n; ++i) AERO_CHECK(seen[i], path, ": no token has id ", i);
  AERO_CHECK(eot != ~0u, path, ": no <|endoftext|> token");
  std::vector<std::pair<uint32_t, uint32_t>> merges;
  for (size_t r = 0; r < model["merges"].size(); ++r) {
    const auto& m = model["merges"][r];
    std::string a, b;
    if (m.is_string()) {
      std::string s = m.get<std::string>();
      size_t sp = s.find(' ');
      AERO_CHECK(sp != std::string::npos, path, ": merge ", r, " \"", s, "\" has no space");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else {
      AERO_CHECK(m.is_array() && m.size() == 2, path, ": merge ", r, " is not a pair");
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    }
    auto ia = by_text.find(a), ib = by_text.find(b);
    AERO_CHECK(ia != by_text.end() && ib != by_text.end(), path, ": merge ", r,
               " refers to a token that is not in the vocabulary");
    merges.emplace_back(ia->second, ib->second);
  }
  return std::make_unique<ByteLevelBpe>(path, std::move(tokens), std::move(merges), eot);
}

void ByteLevelBpe::save_hf_json(const std::string& path) const {
  using nlohmann::json;
  json vocab = json::object();
  for (uint32_t i = 0; i < tokens_.size(); ++i)
    vocab[i == eot_ ? std::string(kEot) : bytes_to_unicode_string(tokens_[i])] = i;
  json merges = json::array();
  for (auto [a, b] : merges_)
    merges.push_back(bytes_to_unicode_string(tokens_[a]) + " " + bytes_to_unicode_string(tokens_[b]));
  json j = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens",
       json::array({{{"id", eot_}, {"content", kEot}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", true}, {"special", true}}})},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder",
       {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
        {"fuse_unk", false}, {"byte_fallback", false}, {"vocab", vocab}, {"merges", merges}}}};
  write_file_atomic(path, j.dump(1) + "\n");
}

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& name_or_path) {
  namespace fs = std::filesystem;
  if (name_or_path == "gpt2") {
    const char* env = std::getenv("AERO_GPT2_DIR");
    if (env && *env) return ByteLevelBpe::load_gpt2_dir(env);
    // The working directory is usually the repository; else the one above the build folder.
    std::string dir = "data/tokenizers/gpt2";
    std::error_code ec2;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec2);
    if (!file_exists(dir + "/encoder.json") && !ec2) {
      fs::path alt = exe.parent_path().parent_path() / "data/tokenizers/gpt2";
      if (file_exists((alt / "encoder.json").string())) dir = alt.string();
    }
    return ByteLevelBpe::load_gpt2_dir(dir);
  }
  std::error_code ec;
  if (fs::is_directory(name_or_path, ec)) {
    if (file_exists(name_or_path + "/encoder.json")) return ByteLevelBpe::load_gpt2_dir(name_or_path);
    AERO_CHECK(file_exists(name_or_path + "/tokenizer.json"), name_or_path,
               ": a tokenizer directory needs encoder.json + vocab.bpe or tokenizer.json");
    return ByteLevelBpe::load_hf_json(name_or_path + "/tokenizer.json");
  }
  AERO_CHECK(file_exists(name_or_path), "tokenizer \"", name_or_path,
             "\" is neither \"gpt2\" nor an existing tokenizer.json or directory");
  return ByteLevelBpe::load_hf_json(name_or_path);
}

}  // namespace aero::text
