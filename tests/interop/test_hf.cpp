// Hugging Face import/export against fixtures made by the transformers library
// (python/interop/make_hf_fixtures.py, run on a machine that has it; committed here).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "core/safetensors.h"
#include "interop/hf.h"
#include "interop/model_weights.h"
#include "model/model.h"

using namespace aero;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string fixture(const std::string& name) {
  return std::string(AERO_SOURCE_DIR) + "/tests/fixtures/hf/" + name;
}

std::string tmpdir(const std::string& name) {
  auto p = fs::temp_directory_path() / ("aero_hf_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

// Max |aero logits - transformers logits| for the fixture's inputs.
double max_logit_error(const interop::AeroWeights& w, const json& expected) {
  auto ids = expected["input_ids"].get<std::vector<std::vector<int>>>();
  int B = int(ids.size()), T = int(ids[0].size());
  model::Model m(w.config, B, T);
  interop::load_into(w, m);
  std::vector<int32_t> tok;
  for (auto& row : ids) tok.insert(tok.end(), row.begin(), row.end());
  m.forward(tok.data(), nullptr, B, T, false);
  const float* lg = m.logits();
  const int V = w.config.vocab_size;
  double err = 0;
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t)
      for (int v = 0; v < V; ++v) {
        double ref = expected["logits"][size_t(b)][size_t(t)][size_t(v)].get<double>();
        err = std::max(err, std::fabs(double(lg[(size_t(b) * T + t) * V + v]) - ref));
      }
  return err;
}

class HfFixture : public ::testing::TestWithParam<const char*> {};

}  // namespace

TEST_P(HfFixture, ImportedModelReproducesTransformersLogits) {
  std::string dir = fixture(GetParam());
  interop::AeroWeights w = interop::import_hf(dir);
  json expected = json::parse(read_file(dir + "/expected.json"));
  double err = max_logit_error(w, expected);
  EXPECT_LT(err, 1e-5) << GetParam() << ": max logit error " << err;
}

TEST_P(HfFixture, ExportThenImportIsLossless) {
  interop::AeroWeights w = interop::import_hf(fixture(GetParam()));
  std::string out = tmpdir(std::string("rt_") + GetParam());
  interop::export_hf(w, out);
  interop::AeroWeights back = interop::import_hf(out);
  EXPECT_EQ(back.config, w.config);
  ASSERT_EQ(back.tensors.size(), w.tensors.size());
  for (auto& [name, v] : w.tensors) EXPECT_EQ(back.tensors.at(name), v) << name;
  // The exported config names the class the library instantiates.
  json cfg = json::parse(read_file(out + "/config.json"));
  EXPECT_TRUE(cfg["architectures"][0] == "GPT2LMHeadModel" ||
              cfg["architectures"][0] == "GPTNeoXForCausalLM");
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfFixture,
                         ::testing::Values("gpt2_tiny", "gpt2_tiny_sharded", "gpt2_tiny_fp16",
                                           "neox_tiny", "neox_tiny_bf16"));

TEST(HfImport, MissingWrongShapeAndWrongDtypeTensorsAreNamed) {
  std::string src = fixture("gpt2_tiny");
  auto with_change = [&](const std::string& tag, auto change) {
    std::string d = tmpdir(tag);
    fs::copy_file(src + "/config.json", d + "/config.json");
    SafeTensors st = SafeTensors::load(src + "/model.safetensors");
    change(st);
    st.save(d + "/model.safetensors");
    return d;
  };
  auto expect_error = [](const std::string& d, const std::string& needle) {
    try {
      interop::import_hf(d);
      FAIL() << "accepted " << d;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(with_change("missing", [](SafeTensors& st) { st.tensors.erase("transformer.h.1.mlp.c_fc.bias"); }),
               "transformer.h.1.mlp.c_fc.bias");
  expect_error(with_change("shape", [](SafeTensors& st) {
                 auto& t = st.tensors["transformer.h.0.attn.c_attn.weight"];
                 t.shape = {t.shape[1], t.shape[0]};
               }),
               "transformer.h.0.attn.c_attn.weight");
  expect_error(with_change("dtype", [](SafeTensors& st) {
                 auto& t = st.tensors["transformer.ln_f.bias"];
                 std::vector<int32_t> z(size_t(t.numel()), 0);
                 t = StTensor::from_raw(DType::I32, z.data(), t.shape);
               }),
               "transformer.ln_f.bias");
}

TEST(HfImport, UnknownArchitectureIsRefused) {
  std::string d = tmpdir("arch");
  write_file_atomic(d + "/config.json", R"({"model_type": "llama", "architectures": ["LlamaForCausalLM"]})");
  fs::copy_file(fixture("gpt2_tiny") + "/model.safetensors", d + "/model.safetensors");
  try {
    interop::import_hf(d);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("llama"), std::string::npos) << e.what();
  }
}

TEST(HfExport, ConfigsTheLibraryCannotExpressAreRefusedWithTheReason) {
  interop::AeroWeights w = interop::import_hf(fixture("gpt2_tiny"));
  w.config.norm = model::Norm::none;
  EXPECT_NE(interop::hf_unsupported_reason(w.config).find("LayerNorm"), std::string::npos);
  EXPECT_THROW(interop::export_hf(w, tmpdir("refuse")), Error);
  w.config.norm = model::Norm::layernorm;
  w.config.temperature = true;
  EXPECT_NE(interop::hf_unsupported_reason(w.config).find("temperature"), std::string::npos);
  std::string d = tmpdir("plain");
  interop::export_plain(w, d);
  json desc = json::parse(read_file(d + "/aero_model.json"));
  EXPECT_EQ(desc["model"]["temperature"], true);
  EXPECT_TRUE(SafeTensors::load(d + "/model.safetensors").has("wte"));
}
