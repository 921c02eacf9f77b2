// UTF-8 decoding, the Unicode classes the GPT-2 pre-tokenizer needs, and the pre-tokenizer.
//
// GPT-2 splits text with the regex (Radford et al. 2019, encoder.py of openai/gpt-2)
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// gpt2_piece_end() implements it by hand with leftmost-first alternation: at each position
// the first alternative that matches wins, and quantifiers are greedy. \s is Unicode
// White_Space, \p{L} the general categories L*, \p{N} the categories N* (tables generated from
// Debian's unicode-data by scripts/gen_unicode_tables.py). Bytes that are not valid UTF-8
// are taken one at a time as code points of class Other, so every byte string splits and
// no byte is lost.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace aero::text {

enum class CharClass : uint8_t { Other = 0, Letter = 1, Number = 2, Space = 3 };

CharClass char_class(uint32_t cp);

// Decodes the code point at s[i] (i < s.size()); returns its length in bytes (1..4) and sets
// cp. An invalid or truncated sequence gives length 1 and cp = kInvalidCodePoint.
constexpr uint32_t kInvalidCodePoint = 0xFFFFFFFFu;
size_t utf8_decode(std::string_view s, size_t i, uint32_t& cp);

// End (exclusive) of the GPT-2 pre-token that starts at byte pos (pos < text.size()).
size_t gpt2_piece_end(std::string_view text, size_t pos);

// Calls fn(piece) for each pre-token of text, in order; the pieces concatenate to text.
template <typename F>
void gpt2_split(std::string_view text, F&& fn) {
  size_t i = 0;
  while (i < text.size()) {
    size_t e = gpt2_piece_end(text, i);
    fn(text.substr(i, e - i));
    i = e;
  }
}

}  // namespace aero::text
