// Secure executor (src/mpc masked-wire gates, dealer + two parties over loopback TCP) against
// the fixed-point simulation: the FFN sub-block (linear, activation, linear, residual with FFN
// scaling) must be reproduced bit for bit, for every activation of the ladder.
#include <gtest/gtest.h>

#include "core/rng.h"
#include "mpc/local_run.h"
#include "pi/executors.h"
#include "pi/secure_exec.h"

using namespace aero;
using namespace aero::pi;

namespace {
template <class E>
typename E::T ffn_block(E& ex, const PiModel& m, const typename E::T& x) {
  const auto& b = m.blocks[0];
  auto u = ex.linear(x, b.fc, "ffn.fc");
  if (m.cfg.ffn_act != model::Activation::identity) u = ex.activation(u, m.cfg.ffn_act, b.slope);
  auto f = ex.linear(u, b.fc_proj, "ffn.proj");
  return ex.residual(x, f, b.beta, b.inv_alpha);
}
}  // namespace

TEST(PiSecure, FfnBlockEqualsFixedPointSimulation) {
  for (const char* rung : {"SM+R", "SM+G", "SM+LR", "SM+ScFFN"}) {
    auto cfg = model::build_run_config("", "tiny", rung,
                                       {"model.n_layer=1", "model.n_head=2", "model.d_model=16", "model.context=8",
                                        "model.vocab_size=11", "model.d_ff=40"})
                   .model;
    auto m = PiModel::random(cfg, 21);
    const int T = 5, d = cfg.d_model;
    Rng rng(4);
    std::vector<double> x0(size_t(T) * d);
    for (auto& v : x0) v = 1.5 * rng.normal();
    FixedExec xe;
    auto want = xe.output(ffn_block(xe, m, xe.input(x0, T, d)));
    const mpc::Block seed{0x77, 0x99};
    std::vector<double> got;
    auto program = [&](mpc::Dealer& dl) {
      SecureExec ex(&dl, nullptr, FxSpec{}, seed);
      auto x = ex.input_client({}, T, d);
      ex.output_client(ffn_block(ex, m, x));
    };
    auto res = mpc::run_local(program, [&](mpc::Party& p) {
      SecureExec ex(nullptr, &p, FxSpec{}, seed);
      auto x = ex.input_client(p.id == mpc::kClient ? x0 : std::vector<double>{}, T, d);
      auto y = ex.output_client(ffn_block(ex, m, x));
      if (p.id == mpc::kClient) got = y;
    });
    ASSERT_EQ(got.size(), want.size()) << rung;
    for (size_t k = 0; k < want.size(); ++k) ASSERT_EQ(got[k], want[k]) << rung << " element " << k;
    EXPECT_GT(res.online_bytes(), 0u);
    EXPECT_GT(res.rounds(), 2u);
  }
}
