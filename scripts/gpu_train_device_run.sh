#!/usr/bin/env bash
# One call on a lent GPU machine for the GPU training driver (docs/gpu.md, "Training on the
# GPU"): standalone build of aero-gpu and the GPU tests, test_gpu_train and test_gpu_model, then
# real runs of the configurations in $CFG (default .carry/gpu2, made here with `aero config`):
#   a     run.json, 100 steps uninterrupted
#   b     run.json, --stop-after 50, then --resume: must log the same losses as a, bit for bit
#   aero  run_aero.json (EReg(SM(t)+ScFuFFN)), 100 steps
#   cpu   cpu_run/ (a CPU `aero train --stop-after 50` run directory) resumed on the GPU
#   speed gpt2-small preset, 30 steps of 64 x 128 tokens (tok/s of the driver, synthetic data)
# Logs and the final checkpoints (tar) go to $OUT (or ./gpu-out) for `aero eval` /
# `aero train --resume` on a CPU machine.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
CFG=${CFG:-.carry/gpu2}
B=${BUILD:-build-cuda}
R=/tmp/aero_gpu_runs
G=./$B/aero-gpu
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
t0=$(date +%s)
cmake -S src/cuda -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release > "$OUT/build.log" 2>&1 &&
  timeout 200 cmake --build "$B" -j "$(nproc)" --target aero-gpu test_gpu_train test_gpu_model \
    >> "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
echo "=== test_gpu_train"
timeout 120 "./$B/test_gpu_train" 2>&1 | tee "$OUT/test_gpu_train.log"
rm -rf "$R"; mkdir -p "$R"
echo "=== a: 100 steps"
timeout 60 $G train --config "$CFG/run.json" --out "$R/a"
echo "=== b: 50 steps, then resume"
timeout 60 $G train --config "$CFG/run.json" --out "$R/b" --stop-after 50 -q &&
  timeout 60 $G train --resume "$R/b" -q
echo "=== aero rung: 100 steps"
timeout 60 $G train --config "$CFG/run_aero.json" --out "$R/aero"
echo "=== CPU-written run resumed on the GPU"
cp -r "$CFG/cpu_run" "$R/cpu" && timeout 60 $G train --resume "$R/cpu"
python3 - "$R" <<'PY'
import json, sys
r = sys.argv[1]
def lines(d):
    out = {}
    for l in open(f"{r}/{d}/metrics.jsonl"):
        j = json.loads(l)
        if "loss" in j and "event" not in j: out[j["step"]] = j["loss"]
        if "val_loss" in j: out[f"val{j['step']}"] = j["val_loss"]
    return out
a, b = lines("a"), lines("b")
print(f"a: {len(a)} records, loss step1 {a[1]:.4f} step100 {a[100]:.4f}, val100 {a['val100']:.4f}")
print("resume b == a (bit-exact losses and val_loss):", a == b, f"({len(b)} records)")
ae = lines("aero"); print(f"aero: loss step1 {ae[1]:.4f} step100 {ae[100]:.4f} val100 {ae['val100']:.4f}")
c = lines("cpu"); print("cpu->gpu:", {k: round(v, 4) for k, v in c.items() if k in (50, 51, 75, 100, 'val50', 'val100')})
PY
for d in a aero cpu; do
  tar -C "$R/$d" -cf "$OUT/run_$d.tar" metrics.jsonl config.json ckpt/latest \
    ckpt/step-000100.safetensors ckpt/step-000100.state.safetensors 2>/dev/null ||
    tar -C "$R/$d" -cf "$OUT/run_$d.tar" metrics.jsonl ckpt
done
echo "=== test_gpu_model"
timeout 60 "./$B/test_gpu_model" > "$OUT/test_gpu_model.log" 2>&1; echo "rc=$?"
grep -E "FAIL|checks" "$OUT/test_gpu_model.log" | head -20
echo "=== speed: gpt2-small, 64 x 128, 30 steps"
timeout 80 $G train --preset gpt2-small --set train.batch_size=64 --set train.seq_len=128 \
  --set train.steps=30 --set train.eval_every=0 --set train.checkpoint_every=0 --set train.warmup=5 \
  --out "$R/speed" 2>&1 | tail -4
python3 - "$R" <<'PY'
import json, sys
sp = [json.loads(l) for l in open(f"{sys.argv[1]}/speed/metrics.jsonl")]
tps = [x["tokens_per_s"] for x in sp if "tokens_per_s" in x][5:]
print(f"speed gpt2-small 64x128: median {sorted(tps)[len(tps)//2]:.0f} tok/s over {len(tps)} steps")
PY
ls -la "$OUT"
