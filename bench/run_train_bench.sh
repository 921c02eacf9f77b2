#!/usr/bin/env bash
# CPU training speed: the aero trainer against (a) Debian's PyTorch running the reference
# model of the same config with the same threads, in the same run, and (b) the machine's
# GEMM-rate limit (bench_train). Prints both ratios; results in $OUT_DIR (default
# BUILD/bench-results). OpenBLAS reads OPENBLAS_CORETYPE only at start-up, so it is set here
# for both programs (SkylakeX where the CPU has AVX-512, else Haswell).
#   bench/run_train_bench.sh [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
BUILD=${AERO_BUILD_DIR:-build-bench}
OUT_DIR=${OUT_DIR:-$BUILD/bench-results}
mkdir -p "$OUT_DIR"
if [[ -z ${OPENBLAS_CORETYPE:-} ]]; then
  if grep -q avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX; else export OPENBLAS_CORETYPE=Haswell; fi
fi
export OMP_NUM_THREADS=$THREADS
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DAERO_BENCH=ON >/dev/null
cmake --build "$BUILD" --target bench_train -j"$THREADS"
echo "== aero (OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE, $THREADS threads)"
"$BUILD/bench_train" --threads "$THREADS" --steps 10 --json "$OUT_DIR/aero_train.json"
echo "== PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)') reference, same config"
/usr/bin/python3 bench/pytorch_train.py --threads "$THREADS" > "$OUT_DIR/pytorch_train.json"
cat "$OUT_DIR/pytorch_train.json"
/usr/bin/python3 - "$OUT_DIR/aero_train.json" "$OUT_DIR/pytorch_train.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1])); p = json.load(open(sys.argv[2]))
pt = p.get("tokens_per_s") or p.get("tok_per_s")
print(f"aero {a['tokens_per_s']:.0f} tok/s, PyTorch {pt:.0f} tok/s: {a['tokens_per_s']/pt:.2f}x PyTorch")
print(f"GEMM limit {a['limit_square_tok_s']:.0f} tok/s (sgemm 1024^3 {a['sgemm_square_gflops']:.1f} GFLOP/s): "
      f"{100*a['tokens_per_s']/a['limit_square_tok_s']:.1f}% of it; "
      f"{100*a['tokens_per_s']/a['limit_model_tok_s']:.1f}% of the model-shape GEMM rate "
      f"({a['sgemm_model_gflops']:.1f} GFLOP/s)")
PY
