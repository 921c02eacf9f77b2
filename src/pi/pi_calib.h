// Calibration of the clipped (max-free) softmax's public clip constants (`aero pi calibrate`).
//
// The clipped softmax computes e_j = E[clamp(C - z_j)] without the row maximum: logits above
// the public constant C are clipped to it, and with exp values at scale 2^clip_out_frac (24)
// a row whose maximum lies far below C underflows (exp(m - C) 2^24 is a few units once
// C - m > 14). One global C = 8 clips 17% of the rows of a trained tiny GPT-2's busiest head
// (row maxima up to 16) and costs next-token agreement (98.8%). C is public per model (like
// the temperatures), so it can be chosen per (layer, head) from training data: for each head,
// the C on a grid (0 to 48 in steps of 1/4) that minimizes the mean total-variation distance
// between the float softmax of each attention row and the fixed-point clipped softmax
// (clipping at C, exp rounded at scale 2^clip_out_frac). The chosen constants go into the
// checkpoint's metadata (PiModel::kSoftmaxClipKey), which PiModel::from_tensors reads and the
// public export keeps; secure runs and `aero pi eval` then use them (PiBlock::softmax_clip).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "pi/fixed_point.h"
#include "pi/pi_model.h"
#include "text/shard.h"

namespace aero::pi {

struct ClipCalibration {
  std::vector<std::vector<double>> clip;        // [layer][head] the chosen constants
  std::vector<std::vector<double>> tv;          // mean TV distance at the chosen constant
  std::vector<std::vector<double>> tv_default;  // ... at FxSpec::clip_hi
  std::vector<std::vector<double>> max_logit;   // largest logit seen per head
  uint64_t chunks = 0, rows = 0;  // rows: attention rows per head
  // The metadata value stored under PiModel::kSoftmaxClipKey: {"clip": [[...]], ...}.
  nlohmann::json to_json(const std::string& split) const;
};

// Float forward passes over up to max_chunks chunks of T tokens of `ds`, every attention row
// of every (layer, head) scored for every candidate constant (spec gives clip_out_frac and the
// default clip_hi).
ClipCalibration calibrate_softmax_clip(const PiModel& m, const text::TokenDataset& ds, int T, int64_t max_chunks,
                                       const FxSpec& spec);

}  // namespace aero::pi
