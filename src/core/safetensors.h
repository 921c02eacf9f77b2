// safetensors I/O (the format of Hugging Face's `safetensors`: 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}},
// then the raw little-endian tensor bytes). Used by checkpoints and model import/export.
// Every read is validated: offsets inside the file, sizes that match dtype x shape, no
// overlaps, so a truncated or corrupt file is refused with a message naming the tensor.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace aero {

enum class DType { F64, F32, F16, BF16, I64, I32, U32, I16, U16, I8, U8, BOOL };

const char* dtype_name(DType t);        // "F32", ...
size_t dtype_size(DType t);
DType dtype_from_name(const std::string& s);  // throws on unknown

struct StTensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
  int64_t numel() const;
  // Converts any float dtype (F64/F32/F16/BF16) to float32; throws for integer dtypes.
  std::vector<float> to_f32(const std::string& name_for_errors) const;
  std::vector<double> to_f64(const std::string& name_for_errors) const;
  static StTensor from_f32(const float* data, std::vector<int64_t> shape);
  static StTensor from_f64(const double* data, std::vector<int64_t> shape);
  static StTensor from_raw(DType t, const void* data, std::vector<int64_t> shape);
};

struct SafeTensors {
  std::map<std::string, StTensor> tensors;
  std::map<std::string, std::string> metadata;

  const StTensor& at(const std::string& name) const;  // clear error if missing
  bool has(const std::string& name) const { return tensors.count(name) != 0; }

  std::string serialize() const;
  static SafeTensors parse(const std::string& data, const std::string& source_name);
  static SafeTensors load(const std::string& path);
  // Only the __metadata__ of a file, reading its header and not its tensors.
  static std::map<std::string, std::string> load_metadata(const std::string& path);
  void save(const std::string& path) const;  // atomic
};

float half_to_float(uint16_t h);
float bf16_to_float(uint16_t h);
uint16_t float_to_half(float f);
uint16_t float_to_bf16(float f);  // round to nearest even

}  // namespace aero
