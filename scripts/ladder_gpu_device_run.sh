#!/usr/bin/env bash
# The `small` ladder (docs/ladder.md) in one call on a lent GPU machine (no Debian -dev
# packages there, no network):
#   1. aero: a fully static binary built here (scripts/prepare_ladder_gpu_carry.sh), carried
#      xz-compressed in .carry/ladder/aero.xz;
#   2. aero-gpu: built there from a snapshot of the committed sources (.carry/ladder/snap), so
#      uncommitted work in the checkout cannot break the run;
#   3. the code corpus: every *.py of that machine's Python installation (stdlib and
#      site-packages), CodeParrot-cleaned and GPT-2-tokenized by `aero data code --from-dir`
#      (GPT-2 BPE files carried in data/tokenizers/gpt2);
#   4. `aero reproduce --preset small --gpu-trainer aero-gpu --gpus 0,..,N-1`: the rungs train in
#      parallel, one per GPU, with --max-seconds as a safety net (a rerun continues).
# Results (everything but checkpoints), the corpus manifest and logs go to $OUT.
# Usage (device tool): carry [".carry", "data/tokenizers/gpt2"],
#   command: bash scripts/ladder_gpu_device_run.sh [PRESET] [MAX_SECONDS|auto] [extra reproduce args]
# MAX_SECONDS=auto splits what is left of BUDGET seconds (default 540, under the device tool's
# 600 s per call) among the waves of pending rungs; a later call on the same (warm) machine
# resumes the rungs a piece left unfinished, skipping the build and the corpus.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-ladder-out}
PRESET=${1:-small}
MAXS=${2:-auto}
shift 2 2>/dev/null || shift $#
C=.carry/ladder
mkdir -p "$OUT"
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
NG=$(nvidia-smi -L | wc -l)
GPUS=$(seq -s, 0 $((NG - 1)))
lscpu | grep -E "Model name|^CPU\(s\)" | sed 's/  */ /g'

B=build-ladder-gpu   # ignored, kept between calls on a warm machine (.carry is replaced)
mkdir -p "$B"
[ -x "$B/aero" ] || { xz -dc "$C/aero.xz" > "$B/aero" && chmod +x "$B/aero"; } || exit 1
AERO=$PWD/$B/aero
"$AERO" --version
if [ ! -x "$B/aero-gpu" ]; then
  cmake -S "$C/snap/src/cuda" -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release > "$OUT/build.log" 2>&1 &&
    cmake --build "$B" -j "$(nproc)" --target aero-gpu >> "$OUT/build.log" 2>&1 ||
    { tail -40 "$OUT/build.log"; exit 1; }
fi
stamp "aero-gpu built"

D=data/code-gpu
if [ ! -f "$D/manifest.json" ]; then
  SRC=/tmp/pysrc
  rm -rf "$SRC"; mkdir -p "$SRC"
  ROOTS=$(python3 -c 'import sysconfig as s; p=s.get_paths(); print(" ".join(sorted({p["stdlib"], p["purelib"], p["platlib"]})))')
  echo "python: $(python3 --version) roots: $ROOTS"
  for r in $ROOTS; do
    [ -d "$r" ] && (cd / && find "${r#/}" -name '*.py' -type f -print0 | xargs -0 cp --parents -t "$SRC")
  done
  du -sh "$SRC"
  "$AERO" data code --from-dir "$SRC" --out "$D" --tokenizer gpt2 > "$OUT/data.log" 2>&1 ||
    { tail -30 "$OUT/data.log"; exit 1; }
  tail -5 "$OUT/data.log"
fi
cp "$D/manifest.json" "$OUT/corpus_manifest.json"
stamp "corpus ready"

R=runs/${LADDER_NAME:-ladder-$PRESET}
if [ "$MAXS" = auto ]; then
  done_n=$(ls "$R"/*/rung.json 2>/dev/null | wc -l)
  pending=$(( 9 - done_n )); [ $pending -lt 1 ] && pending=1
  waves=$(( (pending + NG - 1) / NG ))
  MAXS=$(( (${BUDGET:-540} - ($(date +%s) - t0) - 150) / waves ))
  [ "$MAXS" -lt 60 ] && MAXS=60
  stamp "pending rungs $pending on $NG GPUs: --max-seconds $MAXS"
fi
"$AERO" reproduce --preset "$PRESET" --out "$R" --gpu-trainer "$PWD/$B/aero-gpu" --gpus "$GPUS" \
  --max-seconds "$MAXS" --pi-layers 0 --no-png --set data.dir="$D" "$@" 2>&1 | tee "$OUT/reproduce.log" | grep -v "^step "
rc=${PIPESTATUS[0]}
stamp "reproduce exit $rc"
# Everything except checkpoints comes back, as one tar (the device tool returns few files).
(cd runs && tar --exclude='ckpt' -czf "$OUT/$(basename "$R").tar.gz" "$(basename "$R")")
exit "$rc"
