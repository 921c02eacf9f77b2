#include "core/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"

namespace aero {

namespace {
struct DTypeInfo {
  DType t;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::U32, "U32", 4}, {DType::I16, "I16", 2}, {DType::U16, "U16", 2},
    {DType::I8, "I8", 1}, {DType::U8, "U8", 1}, {DType::BOOL, "BOOL", 1}};
}  // namespace

const char* dtype_name(DType t) {
  for (auto& d : kDTypes)
    if (d.t == t) return d.name;
  return "?";
}
size_t dtype_size(DType t) {
  for (auto& d : kDTypes)
    if (d.t == t) return d.size;
  return 0;
}
DType dtype_from_name(const std::string& s) {
  for (auto& d : kDTypes)
    if (s == d.name) return d.t;
  fail("unknown safetensors dtype '", s, "'");
}

float half_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal
      exp = 127 - 15 + 1;
      while (!(mant & 0x400)) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ff;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000 | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  int32_t exp = int32_t((x >> 23) & 0xff) - 127 + 15;
  uint32_t mant = x & 0x7fffff;
  if (((x >> 23) & 0xff) == 0xff) return uint16_t(sign | 0x7c00 | (mant ? 0x200 : 0));
  if (exp >= 31) return uint16_t(sign | 0x7c00);
  if (exp <= 0) {
    if (exp < -10) return uint16_t(sign);
    mant |= 0x800000;
    uint32_t shift = uint32_t(14 - exp);
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return uint16_t(sign | half);
  }
  uint32_t half = sign | (uint32_t(exp) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) ++half;
  return uint16_t(half);
}

float bf16_to_float(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000) return uint16_t((x >> 16) | 0x40);  // NaN stays NaN
  uint32_t lsb = (x >> 16) & 1;
  x += 0x7fff + lsb;
  return uint16_t(x >> 16);
}

int64_t StTensor::numel() const {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

template <typename T>
static std::vector<T> convert_float(const StTensor& t, const std::string& name) {
  int64_t n = t.numel();
  std::vector<T> out(static_cast<size_t>(n), T(0));
  const uint8_t* p = t.bytes.data();
  switch (t.dtype) {
    case DType::F32:
      for (int64_t i = 0; i < n; ++i) {
        float v;
        std::memcpy(&v, p + 4 * i, 4);
        out[size_t(i)] = T(v);
      }
      break;
    case DType::F64:
      for (int64_t i = 0; i < n; ++i) {
        double v;
        std::memcpy(&v, p + 8 * i, 8);
        out[size_t(i)] = T(v);
      }
      break;
    case DType::F16:
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, p + 2 * i, 2);
        out[size_t(i)] = T(t.dtype == DType::F16 ? half_to_float(v) : bf16_to_float(v));
      }
      break;
    default:
      fail("tensor '", name, "' has dtype ", dtype_name(t.dtype),
           "; expected a float dtype (F32, F16, BF16 or F64)");
  }
  return out;
}

std::vector<float> StTensor::to_f32(const std::string& name) const {
  return convert_float<float>(*this, name);
}
std::vector<double> StTensor::to_f64(const std::string& name) const {
  return convert_float<double>(*this, name);
}

StTensor StTensor::from_raw(DType t, const void* data, std::vector<int64_t> shape) {
  StTensor s;
  s.dtype = t;
  s.shape = std::move(shape);
  s.bytes.resize(size_t(s.numel()) * dtype_size(t));
  if (!s.bytes.empty()) std::memcpy(s.bytes.data(), data, s.bytes.size());
  return s;
}
StTensor StTensor::from_f32(const float* data, std::vector<int64_t> shape) {
  return from_raw(DType::F32, data, std::move(shape));
}
StTensor StTensor::from_f64(const double* data, std::vector<int64_t> shape) {
  return from_raw(DType::F64, data, std::move(shape));
}

const StTensor& SafeTensors::at(const std::string& name) const {
  auto it = tensors.find(name);
  AERO_CHECK(it != tensors.end(), "tensor '", name, "' is missing");
  return it->second;
}

std::string SafeTensors::serialize() const {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (auto& [k, v] : metadata) m[k] = v;
    h["__metadata__"] = m;
  }
  size_t off = 0;
  for (auto& [name, t] : tensors) {
    AERO_CHECK(t.bytes.size() == size_t(t.numel()) * dtype_size(t.dtype), "tensor '", name,
               "': byte size does not match shape");
    h[name] = {{"dtype", dtype_name(t.dtype)},
               {"shape", t.shape},
               {"data_offsets", {off, off + t.bytes.size()}}};
    off += t.bytes.size();
  }
  std::string hs = h.dump();
  while ((8 + hs.size()) % 8) hs += ' ';  // align the data section to 8 bytes
  std::string out;
  out.reserve(8 + hs.size() + off);
  uint64_t n = hs.size();
  for (int i = 0; i < 8; ++i) out += char((n >> (8 * i)) & 0xff);
  out += hs;
  for (auto& [name, t] : tensors) out.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
  return out;
}

SafeTensors SafeTensors::parse(const std::string& data, const std::string& src) {
  AERO_CHECK(data.size() >= 8, src, ": not a safetensors file (", data.size(), " bytes)");
  uint64_t hlen = 0;
  for (int i = 0; i < 8; ++i) hlen |= uint64_t(uint8_t(data[size_t(i)])) << (8 * i);
  AERO_CHECK(hlen <= data.size() - 8 && hlen < (100u << 20), src,
             ": safetensors header length ", hlen, " exceeds the file (", data.size(),
             " bytes): truncated or not a safetensors file");
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(data.begin() + 8, data.begin() + 8 + long(hlen));
  } catch (const std::exception& e) {
    fail(src, ": corrupt safetensors header: ", e.what());
  }
  AERO_CHECK(h.is_object(), src, ": safetensors header is not a JSON object");
  SafeTensors st;
  const size_t base = 8 + hlen;
  const size_t avail = data.size() - base;
  std::vector<std::pair<size_t, size_t>> ranges;
  for (auto& [name, v] : h.items()) {
    if (name == "__metadata__") {
      for (auto& [k, mv] : v.items())
        st.metadata[k] = mv.is_string() ? mv.get<std::string>() : mv.dump();
      continue;
    }
    try {
      StTensor t;
      t.dtype = dtype_from_name(v.at("dtype").get<std::string>());
      t.shape = v.at("shape").get<std::vector<int64_t>>();
      auto offs = v.at("data_offsets").get<std::vector<uint64_t>>();
      AERO_CHECK(offs.size() == 2 && offs[0] <= offs[1], "bad data_offsets");
      for (auto s : t.shape) AERO_CHECK(s >= 0, "negative dimension");
      AERO_CHECK(offs[1] <= avail, "data ends at byte ", offs[1], " but the file holds only ",
                 avail, " data bytes (truncated file?)");
      AERO_CHECK(offs[1] - offs[0] == uint64_t(t.numel()) * dtype_size(t.dtype), "holds ",
                 offs[1] - offs[0], " bytes but ", dtype_name(t.dtype), " x shape needs ",
                 uint64_t(t.numel()) * dtype_size(t.dtype));
      t.bytes.assign(data.begin() + long(base + offs[0]), data.begin() + long(base + offs[1]));
      ranges.push_back({offs[0], offs[1]});
      st.tensors.emplace(name, std::move(t));
    } catch (const Error& e) {
      fail(src, ": tensor '", name, "': ", e.what());
    } catch (const std::exception& e) {
      fail(src, ": tensor '", name, "': malformed entry (", e.what(), ")");
    }
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    AERO_CHECK(ranges[i].first >= ranges[i - 1].second, src, ": overlapping tensor data");
  return st;
}

SafeTensors SafeTensors::load(const std::string& path) { return parse(read_file(path), path); }

std::map<std::string, std::string> SafeTensors::load_metadata(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  AERO_CHECK(f.good(), "cannot open ", path);
  unsigned char len[8] = {};
  f.read(reinterpret_cast<char*>(len), 8);
  AERO_CHECK(f.gcount() == 8, path, ": not a safetensors file (shorter than 8 bytes)");
  uint64_t hlen = 0;
  for (int i = 0; i < 8; ++i) hlen |= uint64_t(len[i]) << (8 * i);
  AERO_CHECK(hlen < (100u << 20), path, ": safetensors header length ", hlen, " is implausible");
  std::string header(size_t(hlen), '\0');
  f.read(header.data(), long(hlen));
  AERO_CHECK(uint64_t(f.gcount()) == hlen, path, ": truncated safetensors header");
  // The header alone parses as a file without tensor data; data offsets are not checked here.
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(header);
  } catch (const std::exception& e) {
    fail(path, ": corrupt safetensors header: ", e.what());
  }
  std::map<std::string, std::string> md;
  if (h.is_object() && h.contains("__metadata__") && h["__metadata__"].is_object())
    for (auto& [k, v] : h["__metadata__"].items()) md[k] = v.is_string() ? v.get<std::string>() : v.dump();
  return md;
}

void SafeTensors::save(const std::string& path) const { write_file_atomic(path, serialize()); }

}  // namespace aero
