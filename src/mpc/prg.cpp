#include "mpc/prg.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#if defined(__AES__) && defined(__SSE2__)
#include <immintrin.h>
#define AERO_AESNI 1
#endif

namespace aero::mpc {

#ifdef AERO_AESNI
namespace {
template <int rcon>
__m128i expand_step(__m128i key) {
  __m128i t = _mm_aeskeygenassist_si128(key, rcon);
  t = _mm_shuffle_epi32(t, 0xff);
  key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
  key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
  key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
  return _mm_xor_si128(key, t);
}
}  // namespace

void Aes128::set_key(Block key) {
  __m128i k[11];
  k[0] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&key));
  k[1] = expand_step<0x01>(k[0]);
  k[2] = expand_step<0x02>(k[1]);
  k[3] = expand_step<0x04>(k[2]);
  k[4] = expand_step<0x08>(k[3]);
  k[5] = expand_step<0x10>(k[4]);
  k[6] = expand_step<0x20>(k[5]);
  k[7] = expand_step<0x40>(k[6]);
  k[8] = expand_step<0x80>(k[7]);
  k[9] = expand_step<0x1b>(k[8]);
  k[10] = expand_step<0x36>(k[9]);
  for (int i = 0; i < 11; ++i) _mm_store_si128(reinterpret_cast<__m128i*>(rk_ + 16 * i), k[i]);
}

void Aes128::encrypt(const Block* in, Block* out, size_t n) const {
  const __m128i* rk = reinterpret_cast<const __m128i*>(rk_);
  size_t i = 0;
#if defined(__VAES__) && defined(__AVX512F__)
  // VAES: four blocks per instruction, eight registers in flight (32 blocks per step).
  if (n >= 32) {
    __m512i k[11];
    for (int r = 0; r < 11; ++r) k[r] = _mm512_broadcast_i32x4(rk[r]);
    for (; i + 32 <= n; i += 32) {
      __m512i b[8];
      for (int j = 0; j < 8; ++j)
        b[j] = _mm512_xor_si512(_mm512_loadu_si512(reinterpret_cast<const void*>(in + i + 4 * j)), k[0]);
      for (int r = 1; r < 10; ++r)
        for (int j = 0; j < 8; ++j) b[j] = _mm512_aesenc_epi128(b[j], k[r]);
      for (int j = 0; j < 8; ++j)
        _mm512_storeu_si512(reinterpret_cast<void*>(out + i + 4 * j), _mm512_aesenclast_epi128(b[j], k[10]));
    }
  }
#endif
  // Eight blocks at a time keep the AES unit's pipeline full.
  for (; i + 8 <= n; i += 8) {
    __m128i b[8];
    for (int j = 0; j < 8; ++j)
      b[j] = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i + j)), rk[0]);
    for (int r = 1; r < 10; ++r)
      for (int j = 0; j < 8; ++j) b[j] = _mm_aesenc_si128(b[j], rk[r]);
    for (int j = 0; j < 8; ++j)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i + j), _mm_aesenclast_si128(b[j], rk[10]));
  }
  for (; i < n; ++i) {
    __m128i b = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i)), rk[0]);
    for (int r = 1; r < 10; ++r) b = _mm_aesenc_si128(b, rk[r]);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm_aesenclast_si128(b, rk[10]));
  }
}
#else
// Portable path: OpenSSL's AES-128-ECB (slower; used only without AES-NI).
void Aes128::set_key(Block key) { std::memcpy(rk_, &key, 16); }
void Aes128::encrypt(const Block* in, Block* out, size_t n) const {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  AERO_CHECK(ctx && EVP_EncryptInit_ex(ctx, EVP_aes_128_ecb(), nullptr, rk_, nullptr) == 1,
             "OpenSSL AES-128 initialisation failed");
  EVP_CIPHER_CTX_set_padding(ctx, 0);
  int len = 0;
  EVP_EncryptUpdate(ctx, reinterpret_cast<uint8_t*>(out), &len,
                    reinterpret_cast<const uint8_t*>(in), int(n * 16));
  EVP_CIPHER_CTX_free(ctx);
}
#endif

void Prg::refill() {
  Block ctrs[kBuf];
  for (int i = 0; i < kBuf; ++i) {
    ctrs[i] = ctr_;
    if (++ctr_.lo == 0) ++ctr_.hi;
  }
  aes_.encrypt(ctrs, buf_, kBuf);
  buf_pos_ = 0;
}

Block Prg::next_block() {
  if (buf_pos_ == kBuf) refill();
  return buf_[buf_pos_++];
}

u64 Prg::next_u64() {
  // Half blocks are not kept: simpler, and AES is cheap.
  return next_block().lo;
}

void Prg::fill(std::span<u64> out, int w) {
  const u64 m = ring_mask(w);
  size_t i = 0;
  for (; i + 1 < out.size(); i += 2) {
    Block b = next_block();
    out[i] = b.lo & m;
    out[i + 1] = b.hi & m;
  }
  if (i < out.size()) out[i] = next_block().lo & m;
}

void Prg::fill_bytes(std::span<uint8_t> out) {
  size_t i = 0;
  while (i < out.size()) {
    Block b = next_block();
    size_t k = std::min<size_t>(16, out.size() - i);
    std::memcpy(out.data() + i, &b, k);
    i += k;
  }
}

namespace {
const Aes128& fixed_aes() {
  // K = the first 128 bits of the fractional part of pi (a nothing-up-my-sleeve constant).
  static const Aes128 aes(Block{0x243f6a8885a308d3ULL, 0x13198a2e03707344ULL});
  return aes;
}
}  // namespace

void fixed_key_hash(const Block* in, Block* out, size_t n) {
  const Aes128& aes = fixed_aes();
  if (in + n <= out || out + n <= in) {  // disjoint: encrypt straight into out
    aes.encrypt(in, out, n);
    for (size_t i = 0; i < n; ++i) out[i] ^= in[i];
    return;
  }
  Block tmp[64];
  for (size_t i = 0; i < n; i += 64) {
    size_t k = std::min<size_t>(64, n - i);
    aes.encrypt(in + i, tmp, k);
    for (size_t j = 0; j < k; ++j) out[i + j] = tmp[j] ^ in[i + j];
  }
}

Block random_seed() {
  Block b;
  AERO_CHECK(RAND_bytes(reinterpret_cast<uint8_t*>(&b), 16) == 1, "OpenSSL RAND_bytes failed");
  return b;
}

}  // namespace aero::mpc
