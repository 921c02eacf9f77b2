// The remaining file helpers that the GPU trainer's host code needs in the standalone build
// (config, token shards, metrics log, checkpoints): same behaviour as src/core/files.cpp,
// without its liblzma/OpenSSL dependencies. Only compiled by `cmake -S src/cuda`.
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include "core/error.h"
#include "core/files.h"

namespace aero {

bool file_exists(const std::string& path) { return std::filesystem::exists(path); }

void make_dirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  AERO_CHECK(!ec, "cannot create directory ", path, ": ", ec.message());
}

// FNV-1a 64-bit: the token shards' payload checksum (docs/formats.md).
uint64_t fnv1a64(std::string_view data, uint64_t h) {
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace aero
