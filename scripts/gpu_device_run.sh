#!/usr/bin/env bash
# One call on a lent GPU machine (see docs/gpu.md): build, all GPU tests, the speed benchmark
# against PyTorch (eager/compiled) for both rungs, and, with 2+ GPUs, the data-parallel loss
# curve and scaling. Logs go to $OUT (or ./gpu-out). Phases: PHASES="test bench dp" (default
# all); "long" adds the 16 x 1024 runs, "profile" the per-op profile of both rungs (timed
# steps only), "variants" the step rate of each optional path.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
PHASES=${PHASES:-"test bench long dp"}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv | tee "$OUT/gpu.txt"
NGPU=$(nvidia-smi -L | wc -l)
B=build-cuda
if [[ " $PHASES " == *" test "* ]]; then
  timeout 400 scripts/test_gpu.sh $B > "$OUT/tests.log" 2>&1; echo "tests rc=$?"
  grep -E "FAIL|checks|PASSED|FAILED|exception|error" "$OUT/tests.log" | head -60
else
  cmake -S src/cuda -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build $B -j "$(nproc)" > "$OUT/build.log" 2>&1 || { tail -20 "$OUT/build.log"; exit 1; }
fi
if [[ " $PHASES " == *" bench "* ]]; then
  for rung in baseline aero; do
    timeout 120 ./$B/gpu_train_bench --rung $rung --batch 256 --seq 128 --steps 30 --warmup 5 --gemm --json "$OUT/aero_$rung.json" 2>&1 | tee -a "$OUT/bench.log" | tail -4
    timeout 300 python3 bench/pytorch_gpu_peer.py --rung $rung --batch 256 --seq 128 --compile --json "$OUT/torch_$rung.json" 2>&1 | tee -a "$OUT/bench.log" | tail -1
  done
fi
if [[ " $PHASES " == *" long "* ]]; then
  # long context: GPT-2 124M at 16 x 1024 (SPEC section 7: PyTorch compiled 500K tok/s)
  timeout 120 ./$B/gpu_train_bench --rung baseline --batch 16 --seq 1024 --steps 20 --warmup 5 --json "$OUT/aero_baseline_T1024.json" 2>&1 | tee -a "$OUT/bench.log" | tail -2
  timeout 300 python3 bench/pytorch_gpu_peer.py --rung baseline --batch 16 --seq 1024 --compile --json "$OUT/torch_baseline_T1024.json" 2>&1 | tee -a "$OUT/bench.log" | tail -1
fi
if [[ " $PHASES " == *" profile "* ]]; then
  for rung in baseline aero; do
    timeout 120 ./$B/gpu_train_bench --rung $rung --batch 256 --seq 128 --steps 11 --warmup 3 --profile > "$OUT/profile_$rung.log" 2>&1
  done
fi
if [[ " $PHASES " == *" variants "* ]]; then
  # A/B of the optional paths (environment switches of docs/gpu.md), step rate of each;
  # VARIANTS: space-separated VAR=value settings, "default" for none (each run in turn)
  VARIANTS=${VARIANTS:-"default AERO_GPU_ATTN=tiled AERO_GPU_LT=off AERO_GPU_LT=bias"}
  for rung in baseline aero; do
    for v in $VARIANTS; do
      echo "== $rung $v" >> "$OUT/variants.log"
      [ "$v" = default ] && v=""
      env $v timeout 120 ./$B/gpu_train_bench --rung $rung --batch 256 --seq 128 --steps 30 --warmup 5 >> "$OUT/variants.log" 2>&1
    done
  done
  echo "== baseline 16 x 1024" >> "$OUT/variants.log"
  timeout 120 ./$B/gpu_train_bench --rung baseline --batch 16 --seq 1024 --steps 20 --warmup 5 >> "$OUT/variants.log" 2>&1
  grep -E "^==|^\| (baseline|aero) " "$OUT/variants.log"
fi
if [[ " $PHASES " == *" dp "* ]] && [ "$NGPU" -ge 2 ]; then
  # loss curve: 1 GPU x global batch 32 vs 2 GPUs x 16 (same global batch and data)
  DPARGS="--rung aero --seq 128 --layers 4 --heads 4 --dmodel 256 --vocab 4096 --curve --steps 40 --warmup 0 --lr 1e-3"
  timeout 120 ./$B/gpu_train_bench $DPARGS --batch 32 --json "$OUT/dp1.json" > "$OUT/dp1.log" 2>&1
  rm -f /tmp/aero_nccl_id
  for r in 0 1; do timeout 120 ./$B/gpu_train_bench $DPARGS --batch 16 --world 2 --rank $r --id-file /tmp/aero_nccl_id --json "$OUT/dp2_r$r.json" > "$OUT/dp2_r$r.log" 2>&1 & done; wait
  python3 - "$OUT" <<'PY'
import json, sys
o = sys.argv[1]
a = json.load(open(f"{o}/dp1.json"))["losses"]; b = json.load(open(f"{o}/dp2_r0.json"))["losses"]
d = max(abs(x - y) / x for x, y in zip(a, b))
print(f"DP loss curve: 1 GPU {a[0]:.4f} -> {a[-1]:.4f}; 2 GPUs {b[0]:.4f} -> {b[-1]:.4f}; max rel diff {d:.2e}")
PY
  # scaling: per-GPU batch 256 x 128, GPT-2 124M baseline, 1 vs 2 GPUs
  rm -f /tmp/aero_nccl_id2
  for r in 0 1; do timeout 150 ./$B/gpu_train_bench --rung baseline --batch 256 --seq 128 --steps 20 --warmup 5 --world 2 --rank $r --id-file /tmp/aero_nccl_id2 --json "$OUT/dps_r$r.json" > "$OUT/dps_r$r.log" 2>&1 & done; wait
  tail -2 "$OUT/dps_r0.log"
fi
echo "=== summary"
grep -h -E "^\||^breakdown" "$OUT"/bench.log "$OUT"/dps_r0.log 2>/dev/null
