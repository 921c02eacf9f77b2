#include "text/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string_view>

#include "core/error.h"
#include "core/files.h"

namespace aero::text {

namespace {
constexpr char kMagic[8] = {'A', 'E', 'R', 'O', 'T', 'O', 'K', 0};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeader = 64;

template <typename T>
void put(std::string& s, size_t off, T v) {
  std::memcpy(s.data() + off, &v, sizeof v);
}
template <typename T>
T get(const uint8_t* p, size_t off) {
  T v;
  std::memcpy(&v, p + off, sizeof v);
  return v;
}
}  // namespace

void write_shard(const std::string& path, const std::vector<uint32_t>& tokens,
                 uint64_t tokenizer_hash, uint32_t vocab_size, uint32_t eot_id) {
  const uint32_t width = vocab_size <= 65536 ? 2 : 4;
  std::string buf(kHeader + tokens.size() * width, '\0');
  uint8_t* payload = reinterpret_cast<uint8_t*>(buf.data()) + kHeader;
  for (size_t i = 0; i < tokens.size(); ++i) {
    AERO_CHECK(tokens[i] < vocab_size, "write_shard ", path, ": token ", tokens[i], " at ", i,
               " is not below the vocabulary size ", vocab_size);
    if (width == 2) {
      uint16_t v = uint16_t(tokens[i]);
      std::memcpy(payload + 2 * i, &v, 2);
    } else {
      std::memcpy(payload + 4 * i, &tokens[i], 4);
    }
  }
  std::memcpy(buf.data(), kMagic, 8);
  put<uint32_t>(buf, 8, kVersion);
  put<uint32_t>(buf, 12, width);
  put<uint64_t>(buf, 16, tokens.size());
  put<uint64_t>(buf, 24, tokenizer_hash);
  put<uint32_t>(buf, 32, vocab_size);
  put<uint32_t>(buf, 36, eot_id);
  put<uint64_t>(buf, 40,
                fnv1a64(std::string_view(reinterpret_cast<char*>(payload), tokens.size() * width)));
  write_file_atomic(path, buf);
}

std::unique_ptr<TokenShard> TokenShard::open(const std::string& path, bool verify) {
  int fd = ::open(path.c_str(), O_RDONLY);
  AERO_CHECK(fd >= 0, "cannot open shard ", path, ": ", std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  size_t size = size_t(st.st_size);
  if (size < kHeader) {
    ::close(fd);
    fail("shard ", path, " is truncated: ", size, " bytes, smaller than the 64-byte header");
  }
  void* m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  AERO_CHECK(m != MAP_FAILED, "cannot map shard ", path, ": ", std::strerror(errno));
  std::unique_ptr<TokenShard> s(new TokenShard());
  s->path_ = path;
  s->map_ = static_cast<const uint8_t*>(m);
  s->map_size_ = size;
  const uint8_t* p = s->map_;
  AERO_CHECK(std::memcmp(p, kMagic, 8) == 0, "shard ", path,
             " has a bad magic number: not an aero token shard");
  uint32_t version = get<uint32_t>(p, 8);
  AERO_CHECK(version == kVersion, "shard ", path, " has format version ", version,
             "; this aero reads version ", kVersion);
  ShardInfo& in = s->info_;
  in.token_bytes = get<uint32_t>(p, 12);
  in.n_tokens = get<uint64_t>(p, 16);
  in.tokenizer_hash = get<uint64_t>(p, 24);
  in.vocab_size = get<uint32_t>(p, 32);
  in.eot_id = get<uint32_t>(p, 36);
  AERO_CHECK(in.token_bytes == 2 || in.token_bytes == 4, "shard ", path,
             " has token width ", in.token_bytes, "; expected 2 or 4");
  AERO_CHECK(in.n_tokens <= (size - kHeader) / in.token_bytes &&
                 kHeader + in.n_tokens * in.token_bytes == size,
             "shard ", path, " is truncated or padded: header says ", in.n_tokens,
             " tokens (", kHeader + in.n_tokens * in.token_bytes, " bytes), file has ", size,
             " bytes");
  s->payload_ = p + kHeader;
  if (verify) {
    uint64_t sum = fnv1a64(std::string_view(reinterpret_cast<const char*>(s->payload_),
                                            in.n_tokens * in.token_bytes));
    AERO_CHECK(sum == get<uint64_t>(p, 40), "shard ", path,
               " is corrupt: payload checksum mismatch");
  }
  return s;
}

TokenShard::~TokenShard() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), map_size_);
}

uint32_t TokenShard::operator[](uint64_t i) const {
  if (info_.token_bytes == 2) return get<uint16_t>(payload_, 2 * i);
  return get<uint32_t>(payload_, 4 * i);
}

void TokenShard::copy(uint64_t off, uint64_t n, int32_t* out) const {
  AERO_CHECK(off + n <= info_.n_tokens, "read past the end of shard ", path_);
  for (uint64_t i = 0; i < n; ++i) out[i] = int32_t((*this)[off + i]);
}

TokenDataset TokenDataset::open(const std::string& dir, const std::string& split,
                                uint64_t expected_hash) {
  namespace fs = std::filesystem;
  AERO_CHECK(fs::is_directory(dir), "dataset directory ", dir, " does not exist");
  std::vector<std::string> files;
  for (auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.rfind(split + "-", 0) == 0 && e.path().extension() == ".tok") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  AERO_CHECK(!files.empty(), "no shards for split '", split, "' in ", dir, " (expected ",
             split, "-NNNNN.tok files)");
  TokenDataset d;
  for (auto& f : files) {
    std::shared_ptr<TokenShard> s = TokenShard::open(f);
    const auto& in = s->info();
    if (d.shards_.empty()) {
      d.vocab_ = in.vocab_size;
      d.eot_ = in.eot_id;
      d.hash_ = in.tokenizer_hash;
    }
    AERO_CHECK(in.tokenizer_hash == d.hash_ && in.vocab_size == d.vocab_, "shard ", f,
               " was made by a different tokenizer than ", files[0]);
    d.starts_.push_back(d.total_);
    d.total_ += in.n_tokens;
    d.shards_.push_back(std::move(s));
  }
  AERO_CHECK(expected_hash == 0 || d.hash_ == expected_hash, "dataset ", dir, "/", split,
             " was tokenized with tokenizer hash ", d.hash_, " but the model expects ",
             expected_hash);
  return d;
}

TokenDataset TokenDataset::from_tokens(std::vector<uint32_t> tokens, uint32_t vocab, uint32_t eot) {
  TokenDataset d;
  d.total_ = tokens.size();
  d.mem_ = std::make_shared<std::vector<uint32_t>>(std::move(tokens));
  d.vocab_ = vocab;
  d.eot_ = eot;
  return d;
}

void TokenDataset::copy(uint64_t off, uint64_t n, int32_t* out) const {
  AERO_CHECK(off + n <= total_, "read of tokens [", off, ", ", off + n,
             ") past the end of the dataset (", total_, " tokens)");
  if (mem_) {
    for (uint64_t i = 0; i < n; ++i) out[i] = int32_t((*mem_)[off + i]);
    return;
  }
  size_t si = size_t(std::upper_bound(starts_.begin(), starts_.end(), off) - starts_.begin() - 1);
  while (n > 0) {
    uint64_t local = off - starts_[si];
    uint64_t take = std::min<uint64_t>(n, shards_[si]->size() - local);
    shards_[si]->copy(local, take, out);
    out += take;
    off += take;
    n -= take;
    ++si;
  }
}

}  // namespace aero::text
