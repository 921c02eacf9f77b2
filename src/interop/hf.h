// Hugging Face interoperability: GPT2LMHeadModel and GPTNeoXForCausalLM checkpoints
// (config.json + model.safetensors, or shards with model.safetensors.index.json) to and
// from aero's configuration and parameter layout (docs/config.md, docs/interop.md).
//
// Layout facts this mapping rests on (from the transformers model definitions):
//  - GPT-2 uses Conv1D, whose weight is [in, out]: aero's [out, in] is its transpose. c_attn
//    holds q|k|v along its output axis in that order, heads contiguous, as aero's qkv.
//  - GPT-NeoX's query_key_value is a Linear [3d, d] whose output rows are grouped per head:
//    row (h*3 + s)*d_k + c is part s (0 q, 1 k, 2 v) of head h. aero groups by part first.
//  - NeoX rotates the first rotary_pct*d_k dims of each head with the rotate_half layout,
//    base rotary_emb_base, as aero's pythia family; hidden_act "gelu" is the exact erf GELU.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "model/config.h"

namespace aero::interop {

// A model in aero's names and layout, float32.
struct AeroWeights {
  model::ModelConfig config;
  std::map<std::string, std::vector<float>> tensors;
  std::map<std::string, std::vector<int64_t>> shapes;
};

// Reads DIR/config.json and its safetensors (single file or index + shards). Throws
// aero::Error naming the file, field or tensor on anything it cannot map: unknown
// architectures, unsupported options, missing tensors, wrong shapes, non-float dtypes.
AeroWeights import_hf(const std::string& dir);

// Whether the Hugging Face classes can express this config exactly; if not, why.
std::string hf_unsupported_reason(const model::ModelConfig& c);

// Writes DIR/config.json + DIR/model.safetensors loadable by from_pretrained. Throws with
// hf_unsupported_reason() for configs the classes cannot express.
void export_hf(const AeroWeights& w, const std::string& dir);

// Fallback for configs HF cannot express: DIR/model.safetensors in aero's names and
// DIR/aero_model.json describing the architecture (the full model config plus the math).
void export_plain(const AeroWeights& w, const std::string& dir);

}  // namespace aero::interop
