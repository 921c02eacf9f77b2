#!/usr/bin/env bash
# One call on a lent GPU machine: Nsight Compute (ncu) reports of single kernels inside a
# training step of gpu_train_bench, and the instruction mix of their SASS. Usage:
#   OUT=dir KERNELS="k_flash_fwd_onepass k_flash_bwd_onepass" scripts/gpu_kernel_profile.sh
# Each entry of KERNELS is a kernel-name regex, optionally ENV=value@regex to run the bench with
# that environment (e.g. AERO_GPU_ATTN=tiled@k_flash_fwd). RUNG (aero) picks the model; the
# report of the third matching launch goes to $OUT/ncu_<regex>.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
RUNG=${RUNG:-aero}
KERNELS=${KERNELS:-"k_flash_fwd_onepass k_flash_bwd_onepass k_cross_entropy_smem"}
mkdir -p "$OUT"
B=build-cuda
cmake -S src/cuda -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null &&
  cmake --build $B -j "$(nproc)" --target gpu_train_bench > "$OUT/build.log" 2>&1 || { tail -20 "$OUT/build.log"; exit 1; }
# SASS instruction mix per kernel of the attention and loss objects
for o in $(find $B -name 'flash_attn.cu.o' -o -name 'kernels.cu.o'); do cuobjdump -sass "$o"; done > /tmp/sass.txt 2>/dev/null
awk '/Function :/ {f=$3} /^ +\/\*[0-9a-f]+\*\// && f != "" {n[f]++; if ($0 ~ /HMMA/) h[f]++; if ($0 ~ /LDSM/) l[f]++; if ($0 ~ /LDL|STL/) sp[f]++}
     END {for (k in n) if (k ~ /flash|cross_entropy/) printf "%-90s instr %6d HMMA %5d LDSM %5d local %d\n", k, n[k], h[k], l[k], sp[k]}' /tmp/sass.txt > "$OUT/sass_mix.txt"
for spec in $KERNELS; do
  env=""; k=$spec
  if [[ $spec == *@* ]]; then env=${spec%@*}; k=${spec#*@}; fi
  env $env timeout 240 ncu --clock-control none --set full --import-source no -k "regex:$k" --launch-skip 2 --launch-count 1 \
    ./$B/gpu_train_bench --rung $RUNG --batch 256 --seq 128 --steps 2 --warmup 1 > "$OUT/ncu_${k}.txt" 2>&1
  echo "== $spec"; grep -E "Duration|Achieved Occupancy|Theoretical Occupancy|Block Limit|Registers Per|Shared Memory Configuration|Dynamic Shared|Memory Throughput|DRAM Throughput|Compute \(SM\) Throughput|L1/TEX Hit|Bank|Stall|Issued Ipc|Warp Cycles Per Issued" "$OUT/ncu_${k}.txt" | head -30
done
