#include "text/unicode.h"

#include <array>

namespace aero::text {

namespace {
#include "text/unicode_tables.inc"

template <size_t N>
bool in_ranges(const uint32_t (&r)[N][2], uint32_t cp) {
  size_t lo = 0, hi = N;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (cp < r[mid][0]) hi = mid;
    else if (cp > r[mid][1]) lo = mid + 1;
    else return true;
  }
  return false;
}

CharClass slow_class(uint32_t cp) {
  if (in_ranges(kSpaceRanges, cp)) return CharClass::Space;
  if (in_ranges(kLetterRanges, cp)) return CharClass::Letter;
  if (in_ranges(kNumberRanges, cp)) return CharClass::Number;
  return CharClass::Other;
}

// The Basic Multilingual Plane in one table (64 KiB), filled once.
struct BmpTable {
  std::array<CharClass, 0x10000> c;
  BmpTable() {
    for (uint32_t cp = 0; cp < 0x10000; ++cp) c[cp] = slow_class(cp);
  }
};
const BmpTable& bmp() {
  static const BmpTable t;
  return t;
}
}  // namespace

CharClass char_class(uint32_t cp) {
  if (cp < 0x10000) return bmp().c[cp];
  if (cp == kInvalidCodePoint) return CharClass::Other;
  return slow_class(cp);
}

size_t utf8_decode(std::string_view s, size_t i, uint32_t& cp) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  uint8_t b0 = p[i];
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  size_t len;
  uint32_t v, min;
  if ((b0 & 0xE0) == 0xC0) len = 2, v = b0 & 0x1F, min = 0x80;
  else if ((b0 & 0xF0) == 0xE0) len = 3, v = b0 & 0x0F, min = 0x800;
  else if ((b0 & 0xF8) == 0xF0) len = 4, v = b0 & 0x07, min = 0x10000;
  else {
    cp = kInvalidCodePoint;
    return 1;
  }
  if (i + len > n) {
    cp = kInvalidCodePoint;
    return 1;
  }
  for (size_t k = 1; k < len; ++k) {
    uint8_t b = p[i + k];
    if ((b & 0xC0) != 0x80) {
      cp = kInvalidCodePoint;
      return 1;
    }
    v = (v << 6) | (b & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
    cp = kInvalidCodePoint;
    return 1;
  }
  cp = v;
  return len;
}

namespace {
inline CharClass class_at(std::string_view s, size_t i, size_t& len) {
  uint8_t b = uint8_t(s[i]);
  if (b < 0x80) {
    len = 1;
    static constexpr auto ascii = [] {
      std::array<CharClass, 128> t{};
      for (int c = 0; c < 128; ++c) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) t[c] = CharClass::Letter;
        else if (c >= '0' && c <= '9') t[c] = CharClass::Number;
        else if (c == ' ' || (c >= 9 && c <= 13)) t[c] = CharClass::Space;
        else t[c] = CharClass::Other;
      }
      return t;
    }();
    return ascii[b];
  }
  uint32_t cp;
  len = utf8_decode(s, i, cp);
  return char_class(cp);
}
}  // namespace

size_t gpt2_piece_end(std::string_view t, size_t i) {
  const size_t n = t.size();
  // 's|'t|'re|'ve|'m|'ll|'d
  if (t[i] == '\'' && i + 1 < n) {
    char c = t[i + 1];
    if (c == 's' || c == 't' || c == 'm' || c == 'd') return i + 2;
    if (i + 2 < n) {
      char c2 = t[i + 2];
      if ((c == 'r' && c2 == 'e') || (c == 'v' && c2 == 'e') || (c == 'l' && c2 == 'l'))
        return i + 3;
    }
  }
  size_t len;
  CharClass c0 = class_at(t, i, len);
  size_t j = i;
  CharClass cls = c0;
  if (t[i] == ' ' && i + 1 < n) {
    size_t len1;
    CharClass c1 = class_at(t, i + 1, len1);
    if (c1 != CharClass::Space) {  //  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+
      cls = c1;
      j = i + 1 + len1;
    }
  } else if (c0 != CharClass::Space) {
    j = i + len;
  }
  if (cls != CharClass::Space || j != i) {
    while (j < n) {
      size_t l;
      if (class_at(t, j, l) != cls) break;
      j += l;
    }
    return j;
  }
  // \s+(?!\S) | \s+ : the whitespace run, less its last character when a non-space follows
  // and the run has more than one character.
  size_t last = i;
  j = i + len;
  while (j < n) {
    size_t l;
    if (class_at(t, j, l) != CharClass::Space) break;
    last = j;
    j += l;
  }
  if (j == n || last == i) return j;
  return last;
}

}  // namespace aero::text
