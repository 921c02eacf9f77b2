// The parts of core/files.h that need liblzma and OpenSSL, kept apart from files.cpp so that
// builds without those libraries (the standalone CUDA build on GPU machines) compile files.cpp
// as it is.
#include <lzma.h>
#include <openssl/evp.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "core/files.h"

namespace aero {

std::string read_xz_file(const std::string& path) {
  std::string in = read_file(path);
  lzma_stream strm = LZMA_STREAM_INIT;
  AERO_CHECK(lzma_stream_decoder(&strm, UINT64_MAX, LZMA_CONCATENATED) == LZMA_OK,
             "liblzma: cannot start decoder for ", path);
  std::string out;
  std::vector<uint8_t> buf(1 << 20);
  strm.next_in = reinterpret_cast<const uint8_t*>(in.data());
  strm.avail_in = in.size();
  lzma_ret ret;
  do {
    strm.next_out = buf.data();
    strm.avail_out = buf.size();
    ret = lzma_code(&strm, LZMA_FINISH);
    out.append(reinterpret_cast<char*>(buf.data()), buf.size() - strm.avail_out);
  } while (ret == LZMA_OK);
  lzma_end(&strm);
  AERO_CHECK(ret == LZMA_STREAM_END, path, ": corrupt or truncated xz data (liblzma error ",
             int(ret), ")");
  return out;
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  AERO_CHECK(EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) == 1,
             "sha256 failed");
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < len; ++i) {
    s += hex[md[i] >> 4];
    s += hex[md[i] & 15];
  }
  return s;
}

}  // namespace aero
