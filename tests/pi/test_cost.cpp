// The cost executor walks the same graph as the float / fixed executors: its element counts
// must equal SPEC 6's inventory for GPT-2 small (T=128, 12 blocks), and removing an operator
// family (AERO rungs) must remove exactly its cost.
#include <gtest/gtest.h>

#include "pi/cost_model.h"

using namespace aero;
using namespace aero::pi;

namespace {
CostExec run(const std::string& rung, Scope scope = Scope::blocks, SoftmaxVariant sm = SoftmaxVariant::exact_max) {
  auto cfg = model::build_run_config("", "gpt2-small", rung, {}).model;
  FxSpec s;
  s.softmax = sm;
  CostExec ex(s, WireWidths{}, false);
  auto m = PiModel::shapes(cfg);
  if (scope == Scope::blocks) blocks_forward(ex, m, ex.input(cfg.context, cfg.d_model));
  else full_forward(ex, m, std::vector<int32_t>(cfg.context, 0), false);
  return ex;
}
double elems(const CostExec& ex, const std::string& op) {
  auto it = ex.ops().find(op);
  return it == ex.ops().end() ? 0 : it->second.elements;
}
}  // namespace

TEST(PiCost, ElementCountsMatchSpecInventory) {
  auto ex = run("SM+LN+G");
  EXPECT_EQ(elems(ex, "gelu"), 12.0 * 128 * 3072);                 // 4.72M
  EXPECT_EQ(elems(ex, "softmax.exp"), 12.0 * 12 * 128 * 129 / 2);  // 1.19M causal scores
  EXPECT_EQ(elems(ex, "softmax.recip"), 12.0 * 12 * 128);          // 18,432 rows
  EXPECT_EQ(elems(ex, "layernorm.rsqrt"), 24.0 * 128);             // 3,072 rsqrt
  // Linear outputs: per block T (3d + d + 4d + d) = 128 * 9 * 768.
  EXPECT_EQ(elems(ex, "linear"), 12.0 * 128 * 9 * 768);
  EXPECT_GT(ex.total().online_bytes, 0);
}

TEST(PiCost, RungsRemoveTheirOperators) {
  auto g = run("SM+LN+G"), r = run("SM+LN+R"), sm = run("SM+ScFuFFN"), k6 = run("SM+ScFuFFN-k6");
  EXPECT_EQ(elems(r, "gelu"), 0);
  EXPECT_EQ(elems(r, "relu"), elems(g, "gelu"));
  EXPECT_EQ(elems(sm, "layernorm"), 0);
  EXPECT_EQ(elems(sm, "relu") + elems(sm, "gelu"), 0);
  EXPECT_LT(r.total().online_bytes, g.total().online_bytes);
  EXPECT_LT(sm.total().online_bytes, r.total().online_bytes);
  EXPECT_LT(k6.total().online_bytes, sm.total().online_bytes);
  EXPECT_LT(sm.rounds(), g.rounds());
  // The max-free softmax has no tournament: fewer rounds.
  auto clipped = run("SM+LN+G", Scope::blocks, SoftmaxVariant::clipped);
  EXPECT_EQ(elems(clipped, "softmax.max"), 0);
  EXPECT_LT(clipped.rounds(), g.rounds());
}

TEST(PiCost, FullScopeAddsEmbeddingHeadAndArgmax) {
  auto b = run("SM+LN+G"), f = run("SM+LN+G", Scope::full);
  EXPECT_GT(elems(f, "embedding"), 0);
  EXPECT_EQ(elems(f, "argmax"), 50257.0 - 1 + 1);
  EXPECT_GT(f.total().online_bytes, b.total().online_bytes);
  EXPECT_GT(f.rounds(), b.rounds() + 16);
}
