// The two file helpers safetensors.cpp needs, for the standalone GPU build only (the full build
// links aero_core's files.cpp, which also pulls liblzma and OpenSSL, absent on GPU machines).
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <unistd.h>

#include "core/error.h"
#include "core/files.h"

namespace aero {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  AERO_CHECK(f, "cannot open ", path, ": ", std::strerror(errno));
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write_file_atomic(const std::string& path, std::string_view data) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    AERO_CHECK(f, "cannot create ", tmp, ": ", std::strerror(errno));
    f.write(data.data(), std::streamsize(data.size()));
    AERO_CHECK(f.good(), "cannot write ", tmp);
  }
  AERO_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename ", tmp, " to ", path);
}

}  // namespace aero
