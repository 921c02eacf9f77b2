#include "train/checkpoint_format.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"

namespace aero::train {

namespace fs = std::filesystem;

namespace {

std::string u64_hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "%016" PRIx64, v);
  return b;
}

std::string encode_rng(const Rng::State& s) {
  uint64_t spare_bits;
  std::memcpy(&spare_bits, &s.spare, 8);
  return u64_hex(s.s[0]) + "," + u64_hex(s.s[1]) + "," + u64_hex(s.s[2]) + "," +
         u64_hex(s.s[3]) + "," + u64_hex(spare_bits) + "," + (s.has_spare ? "1" : "0");
}

Rng::State decode_rng(const std::string& text, const std::string& src) {
  Rng::State s{};
  uint64_t w[5];
  int has = 0;
  if (std::sscanf(text.c_str(), "%" SCNx64 ",%" SCNx64 ",%" SCNx64 ",%" SCNx64 ",%" SCNx64 ",%d",
                  &w[0], &w[1], &w[2], &w[3], &w[4], &has) != 6)
    fail(src, ": metadata 'rng' is malformed: '", text, "'");
  for (int i = 0; i < 4; ++i) s.s[size_t(i)] = w[i];
  std::memcpy(&s.spare, &w[4], 8);
  s.has_spare = has != 0;
  return s;
}

void check_format(const Metadata& md, const char* want, const std::string& src) {
  const std::string& f = metadata_value(md, "format", src);
  AERO_CHECK(f == want, src, ": __metadata__.format is '", f, "', expected '", want, "'");
}

}  // namespace

std::string checkpoint_path(const std::string& run_dir, int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "step-%06" PRId64 ".safetensors", step);
  return (fs::path(run_dir) / "ckpt" / name).string();
}

std::string state_path_for(const std::string& w) {
  const std::string ext = ".safetensors";
  if (w.size() >= ext.size() && w.compare(w.size() - ext.size(), ext.size(), ext) == 0)
    return w.substr(0, w.size() - ext.size()) + ".state.safetensors";
  return w + ".state.safetensors";
}

std::string resolve_checkpoint(const std::string& p) {
  std::error_code ec;
  if (fs::is_regular_file(p, ec)) return p;
  AERO_CHECK(fs::is_directory(p, ec), "checkpoint '", p, "' does not exist");
  for (const fs::path& dir : {fs::path(p) / "ckpt", fs::path(p)}) {
    const fs::path latest = dir / "latest";
    if (!fs::is_regular_file(latest, ec)) continue;
    std::string name = read_file(latest.string());
    while (!name.empty() && (name.back() == '\n' || name.back() == '\r' || name.back() == ' '))
      name.pop_back();
    AERO_CHECK(!name.empty() && name.find('/') == std::string::npos, latest.string(),
               ": expected one checkpoint file name, got '", name, "'");
    const fs::path w = dir / name;
    AERO_CHECK(fs::is_regular_file(w, ec), latest.string(), " names '", name,
               "', which does not exist");
    return w.string();
  }
  fail("'", p, "' is a directory without ckpt/latest: not a run directory with a checkpoint");
}

void check_fresh_run_dir(const std::string& run_dir, bool overwrite) {
  std::error_code ec;
  AERO_CHECK(overwrite || !std::filesystem::exists(std::filesystem::path(run_dir) / "ckpt" / "latest", ec),
             "run directory ", run_dir, " already holds a run: continue it with --resume ", run_dir,
             ", or choose another --out");
}

void write_latest(const std::string& run_dir, const std::string& weights_path) {
  write_file_atomic((fs::path(run_dir) / "ckpt" / "latest").string(),
                    fs::path(weights_path).filename().string() + "\n");
}

const std::string& metadata_value(const Metadata& md, const std::string& key, const std::string& src) {
  auto it = md.find(key);
  AERO_CHECK(it != md.end(), src, ": __metadata__ lacks '", key, "' (not an aero checkpoint?)");
  return it->second;
}

int64_t metadata_int(const Metadata& md, const std::string& key, const std::string& src) {
  const std::string& v = metadata_value(md, key, src);
  try {
    size_t used = 0;
    long long x = std::stoll(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  fail(src, ": __metadata__ '", key, "' is not an integer: '", v, "'");
}

double metadata_double(const Metadata& md, const std::string& key, const std::string& src) {
  const std::string& v = metadata_value(md, key, src);
  try {
    return std::stod(v);
  } catch (const std::exception&) {
    fail(src, ": __metadata__ '", key, "' is not a number: '", v, "'");
  }
}

Metadata weights_metadata(const model::RunConfig& cfg, int64_t step) {
  return {{"format", kCheckpointFormat},
          {"aero_config", model::to_json(cfg).dump()},
          {"step", std::to_string(step)}};
}

model::RunConfig config_from_weights_metadata(const Metadata& md, const std::string& src, int64_t* step) {
  check_format(md, kCheckpointFormat, src);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(metadata_value(md, "aero_config", src));
  } catch (const nlohmann::json::exception& e) {
    fail(src, ": __metadata__.aero_config is not valid JSON: ", e.what());
  }
  if (step) *step = metadata_int(md, "step", src);
  return model::run_config_from_json(j, src + " (aero_config)");
}

void put_state_metadata(Metadata& md, const StateRecord& s) {
  md["format"] = kStateFormat;
  md["step"] = std::to_string(s.step);
  md["data_epoch"] = std::to_string(s.data_epoch);
  md["data_index"] = std::to_string(s.data_index);
  md["rng"] = encode_rng(s.rng);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", s.elapsed_s);
  md["elapsed_s"] = buf;
  md["stop_reason"] = s.stop_reason;
}

StateRecord state_from_metadata(const Metadata& md, const std::string& src) {
  check_format(md, kStateFormat, src);
  StateRecord s;
  s.step = metadata_int(md, "step", src);
  s.data_epoch = uint64_t(metadata_int(md, "data_epoch", src));
  s.data_index = uint64_t(metadata_int(md, "data_index", src));
  s.rng = decode_rng(metadata_value(md, "rng", src), src);
  s.elapsed_s = metadata_double(md, "elapsed_s", src);
  s.stop_reason = metadata_value(md, "stop_reason", src);
  return s;
}

}  // namespace aero::train
