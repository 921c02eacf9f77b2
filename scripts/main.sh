#!/usr/bin/env bash
# The main job on a fresh machine (after scripts/setup.sh): build aero, build the smoke code
# corpus (Python standard library from Debian's packages) with a code tokenizer learned from
# it, and reproduce the AERO ladder with the `tiny` preset on the CPU. Rerunning skips what
# is done (corpus, finished rungs) and resumes an interrupted rung.
#   scripts/main.sh [extra `aero reproduce` options]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${AERO_BUILD_DIR:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target aero
AERO="$BUILD/aero"

# 1. The smoke corpus (GPT-2 tokens; fetches libpython3.11-stdlib with apt-get download).
[[ -f data/code-smoke/manifest.json ]] || "$AERO" data code --smoke --out data/code-smoke
# 2. A byte-level BPE of 8192 tokens learned from the same sources (like the paper's code
#    tokenizer, retrained on Python), and the corpus re-tokenized with it.
TOK=data/tokenizers/code-smoke-8k.json
if [[ ! -f $TOK ]]; then
  "$AERO" tokenizer train --vocab-size 8192 --input cache/code/unpacked/libpython3.11-* --out "$TOK"
fi
[[ -f data/code-smoke-8k/manifest.json ]] || "$AERO" data code --smoke --tokenizer "$TOK" --out data/code-smoke-8k
# 3. The ladder.
# Budget for a 2-core machine (about 15 minutes for the nine rungs on an idle one): 800 steps
# of 8 x 128 tokens per rung, then a real 2PC run (dealer + 2 parties over loopback TCP) of
# all four blocks of each trained shape.
"$AERO" reproduce --preset tiny --out runs/tiny-ladder \
  --set data.dir=data/code-smoke-8k --set "data.tokenizer=$TOK" --set model.vocab_size=8192 \
  --set train.steps=800 --set train.eval_every=100 --set train.checkpoint_every=200 "$@"
echo "results: runs/tiny-ladder/results.md (figures in runs/tiny-ladder/figures/)"
