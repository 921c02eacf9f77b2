// The GPU backend of the model's training step: the same model, switches, parameter names and
// checkpoints as aero::model::Model (docs/config.md), on one CUDA device, in bf16 mixed
// precision (bf16 matrix operands and activations, fp32 accumulation, fp32 residual stream,
// fp32 master weights, gradients and AdamW moments). docs/gpu.md lists what is supported.
//
// Data parallel: attach an NCCL communicator (set_data_parallel) and backward() all-reduces
// each layer's gradients (averaged) on a second stream while the layers below are still being
// differentiated.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "model/config.h"

namespace aero::cuda {

struct GpuParam {
  std::string name;
  std::vector<int64_t> shape;
  size_t size = 0;    // elements
  size_t offset = 0;  // into the parameter / gradient / moment arenas
  bool decay = false;
  bool trainable = true;  // false for buffers (spectral-norm u): no gradient, no moments
};

struct GpuStats {
  double ce = 0, ent_reg = 0, loss = 0;
};

// The GPU arena's parameter layout for cfg (names and shapes of docs/config.md, offsets with
// 64-element alignment, decay group; the output head's matrix is followed by zero rows up to
// the vocabulary rounded up to 64, for the padded LM-head products). Pure host code: needs no GPU.
struct GpuLayout {
  std::vector<GpuParam> params;
  size_t size = 0;  // arena elements, gaps included
};
GpuLayout gpu_param_layout(const model::ModelConfig& cfg);

// Host side of the checkpoints (no GPU needed): the arena's tensors as safetensors entries
// (prefix + NAME, F32, docs/config.md names) and back (names and shapes must match; extra
// tensors in the file are ignored). With a prefix (optimizer moments "m.", "v.") buffers are
// skipped, as the CPU trainer's state files hold moments of trainable tensors only.
// write_weights_file adds __metadata__.format "aero-ckpt-1"; for aero::train::load_model to
// read a GPU checkpoint, pass "aero_config" (the run config JSON) and "step" in metadata, as
// the CPU trainer writes them.
SafeTensors arena_to_safetensors(const std::vector<GpuParam>& ps, const std::vector<float>& arena,
                                 const std::string& prefix);
void arena_from_safetensors(const std::vector<GpuParam>& ps, std::vector<float>& arena,
                            const std::string& prefix, const SafeTensors& st,
                            const std::string& path);
void write_weights_file(const std::string& path, const std::vector<GpuParam>& ps,
                        const std::vector<float>& arena,
                        std::map<std::string, std::string> metadata);
std::vector<float> read_weights_file(const std::string& path, const GpuLayout& lay);

// "" when the GPU path supports every switch of cfg; else "not supported on GPU yet: <switch>".
// Every model switch of docs/config.md is supported; only malformed shapes are refused.
std::string gpu_unsupported(const model::ModelConfig& cfg);

class GpuModel {
 public:
  // Throws aero::cuda::CudaError (a std::runtime_error) for unsupported switches or CUDA
  // failures. Memory for max_batch x max_seq is allocated here, once.
  GpuModel(const model::ModelConfig& cfg, int max_batch, int max_seq, int device = 0);
  ~GpuModel();
  GpuModel(const GpuModel&) = delete;
  GpuModel& operator=(const GpuModel&) = delete;

  const model::ModelConfig& config() const;
  const std::vector<GpuParam>& params() const;
  const GpuParam& param(const std::string& name) const;
  size_t num_parameters() const;  // elements of all tensors (the arena's alignment gaps excluded)

  // N(0, init_std) for matrices and embeddings (output projections / sqrt(2L)), LN gains 1,
  // biases 0, temperatures / theta / alpha / beta at their configured initial values.
  void init_weights(uint64_t seed);
  // Whole arena in params() order (offsets), fp32.
  void set_weights(const std::vector<float>& host);
  std::vector<float> weights() const;
  std::vector<float> grads() const;

  // tokens, targets: host [B*T] int32 (targets null: no loss). training=true keeps what
  // backward needs and applies the entropy regularizer. grad_scale multiplies the gradient
  // that backward() produces (1/grad_accum for accumulation).
  GpuStats forward(const int32_t* tokens, const int32_t* targets, int B, int T, bool training,
                   float grad_scale = 1.f);
  // Gradient of the last training forward's loss, ACCUMULATED into the gradient arena.
  // sync=false skips the data-parallel all-reduce (earlier micro-batches of an accumulation).
  void backward(bool sync = true);
  void zero_grad();
  // Clip (global L2 norm, train.grad_clip) + AdamW (train.beta1/beta2/eps/weight_decay) at
  // learning rate lr; step counts from 1. Returns the gradient norm before clipping.
  double optimizer_step(const model::TrainConfig& tc, double lr, int step);

  // The asynchronous training path (aero-gpu's step pipeline): the same work as forward /
  // optimizer_step, but nothing waits for the GPU, so the host can prepare the next batch while
  // the GPU computes. Results land in pinned host memory (host_buffer) when the GPU gets there;
  // read them after wait_fence on a later fence.
  // forward_async: a training forward; tokens/targets are copied before it returns. The loss
  // sums (loss_sums_size() floats; stats_from_sums turns them into the loss) go to sums_out;
  // with a data-parallel communicator they are first summed over the ranks (so stats_from_sums
  // with the global batch gives the global batch's loss), and so is `extra` (sums_out[3]), a
  // value the ranks agree on through the reduction (aero-gpu: the time-limit request).
  // NaN guard: a non-finite loss sum sets a sticky device flag; optimizer_step_async sets it
  // for a non-finite gradient norm too, and while it is set AdamW changes nothing (weights and
  // moments stay as they were), until reset_guard().
  void forward_async(const int32_t* tokens, const int32_t* targets, int B, int T,
                     float grad_scale, float* sums_out, float extra = 0.f);
  int loss_sums_size() const;
  GpuStats stats_from_sums(const float* sums, int B, int T) const;
  // Clip + AdamW as optimizer_step; the gradient norm goes to *norm_out (pinned host memory).
  void optimizer_step_async(const model::TrainConfig& tc, double lr, int step, float* norm_out);
  void reset_guard();
  // A point in the model's stream; wait_fence blocks until the GPU has passed it (16 fences
  // may be outstanding).
  uint64_t fence();
  void wait_fence(uint64_t f);
  // Pinned host memory of n floats (zeroed), freed with the model.
  float* host_buffer(size_t n);
  // Data parallel: v summed over the ranks (synchronous; no-op without a communicator).
  void allreduce_sum(std::vector<double>& v);

  // Tests: keep spectral-norm u fixed in training forwards (as BasicModel's
  // set_spectral_norm_frozen), so that the loss is a fixed function of the weights.
  void set_spectral_norm_frozen(bool frozen);

  // Mean attention entropy per (layer, head) of the last forward, nats.
  std::vector<std::vector<double>> head_entropy() const;

  // Checkpoints: the same safetensors layout as the CPU trainer (names of docs/config.md).
  // metadata is copied into __metadata__ (format "aero-ckpt-1" added).
  void save_weights(const std::string& path, std::map<std::string, std::string> metadata) const;
  // AdamW moments as m.NAME / v.NAME, plus metadata (step, ...).
  void save_optimizer_state(const std::string& path,
                            std::map<std::string, std::string> metadata) const;
  void load_weights(const std::string& path);  // names and shapes must match
  std::map<std::string, std::string> load_optimizer_state(const std::string& path);

  // Data parallel (NCCL communicator as void* so this header needs no nccl.h).
  void set_data_parallel(void* nccl_comm, int world_size);

  void synchronize() const;
  // With AERO_GPU_PROFILE=1 in the environment: time per op (events between ops, summed since
  // construction) as a markdown table; "" otherwise.
  std::string profile_report() const;
  void profile_reset();  // drop the sums so far (e.g. the warm-up steps)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aero::cuda
