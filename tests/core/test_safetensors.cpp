#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "core/safetensors.h"

using namespace aero;

TEST(SafeTensors, RoundTripKeepsEveryDtypeAndMetadata) {
  SafeTensors st;
  std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -0.5f};
  st.tensors["a"] = StTensor::from_f32(a.data(), {2, 3});
  std::vector<double> b = {0.1, 0.2};
  st.tensors["b.x"] = StTensor::from_f64(b.data(), {2});
  int64_t c[3] = {1, -2, 3};
  st.tensors["c"] = StTensor::from_raw(DType::I64, c, {3});
  st.metadata["config"] = "{\"k\": 1}";
  auto back = SafeTensors::parse(st.serialize(), "mem");
  EXPECT_EQ(back.metadata.at("config"), "{\"k\": 1}");
  EXPECT_EQ(back.at("a").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(back.at("a").to_f32("a"), a);
  EXPECT_EQ(back.at("b.x").to_f64("b.x"), b);
  EXPECT_EQ(back.at("c").bytes, st.at("c").bytes);
  EXPECT_THROW(back.at("c").to_f32("c"), Error);
}

TEST(SafeTensors, TruncatedAndCorruptFilesAreRefused) {
  SafeTensors st;
  std::vector<float> a(100, 1.0f);
  st.tensors["w"] = StTensor::from_f32(a.data(), {10, 10});
  std::string s = st.serialize();
  try {
    SafeTensors::parse(s.substr(0, s.size() - 4), "x.safetensors");
    FAIL() << "truncated file accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'w'"), std::string::npos) << e.what();
  }
  std::string bad = s;
  bad[8] = '!';  // the header's opening brace
  EXPECT_THROW(SafeTensors::parse(bad, "x"), Error);
  EXPECT_THROW(SafeTensors::parse("abc", "x"), Error);
}

TEST(HalfFloats, ConversionsRoundTripAndRound) {
  Rng rng(3);
  for (int i = 0; i < 10000; ++i) {
    float f = float(rng.normal() * 100.0);
    float h = half_to_float(float_to_half(f));
    EXPECT_NEAR(h, f, std::fabs(f) * 1e-3 + 1e-4);
    float b = bf16_to_float(float_to_bf16(f));
    EXPECT_NEAR(b, f, std::fabs(f) * 8e-3);
  }
  EXPECT_EQ(half_to_float(0x3c00), 1.0f);
  EXPECT_EQ(bf16_to_float(0x3f80), 1.0f);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(NAN))));
}
