// File helpers: whole-file reads with clear errors, and atomic writes (temp file + rename)
// so that a crash never leaves a half-written checkpoint or shard behind.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace aero {

std::string read_file(const std::string& path);
std::vector<uint8_t> read_file_bytes(const std::string& path);
// Writes to path.tmp.<pid>, fsyncs, then renames over path.
void write_file_atomic(const std::string& path, std::string_view data);
bool file_exists(const std::string& path);
void make_dirs(const std::string& path);
// Reads an .xz file whole (liblzma); throws naming the file on corrupt input.
std::string read_xz_file(const std::string& path);
// FNV-1a 64-bit, for cheap content identification (not for security).
uint64_t fnv1a64(std::string_view data, uint64_t h = 0xcbf29ce484222325ULL);
// SHA-256 as lowercase hex (OpenSSL is linked by the mpc module; this one is standalone).
std::string sha256_hex(std::string_view data);

}  // namespace aero
