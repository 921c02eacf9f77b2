// Tokenizer interface (byte-level BPE: GPT-2's original vocabulary, or one trained by aero
// and stored as a Hugging Face tokenizer.json). Implemented in src/text (data issue).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace aero::text {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // "gpt2" (files from data/tokenizers/gpt2, installed by scripts/setup.sh, or $AERO_GPT2_DIR)
  // or a path to a tokenizer.json. Throws aero::Error with the path and what is wrong.
  static std::unique_ptr<Tokenizer> load(const std::string& name_or_path);

  // Ordinary text; "<|endoftext|>" inside the text is encoded as plain text, not the special
  // token (like tiktoken's encode_ordinary). Every byte survives: decode(encode(s)) == s.
  virtual std::vector<uint32_t> encode(std::string_view text) const = 0;
  virtual std::string decode(const std::vector<uint32_t>& ids) const = 0;
  virtual uint32_t vocab_size() const = 0;
  virtual uint32_t eot_id() const = 0;  // <|endoftext|>
  // Identifies the vocabulary (stored in shard headers and checkpoints).
  virtual uint64_t hash() const = 0;
  virtual std::string name() const = 0;
};

}  // namespace aero::text
