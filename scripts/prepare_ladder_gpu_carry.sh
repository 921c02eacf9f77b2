#!/usr/bin/env bash
# Prepares .carry/ladder for scripts/ladder_gpu_device_run.sh (run here, on the CPU machine):
# a fully static `aero` (AERO_STATIC, portable x86-64-v3 code) built from the committed HEAD in
# a scratch worktree, xz-compressed, and a snapshot of HEAD's sources for building aero-gpu on
# the GPU machine. Uncommitted changes are not included on purpose.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
C=$ROOT/.carry/ladder
WT=${WT:-$ROOT/../aero-static-wt}
mkdir -p "$C"
if [ ! -d "$WT" ]; then git worktree add --detach "$WT" HEAD; fi
git -C "$WT" checkout -q --detach "$(git rev-parse HEAD)"
cmake -S "$WT" -B "$WT/build-static" -G Ninja -DCMAKE_BUILD_TYPE=Release -DAERO_STATIC=ON \
  -DAERO_NATIVE=OFF -DAERO_TESTS=OFF -DCMAKE_CXX_FLAGS="-march=x86-64-v3" > /dev/null
cmake --build "$WT/build-static" -j "$(nproc)" --target aero
xz -T0 -6 -c "$WT/build-static/aero" > "$C/aero.xz"
rm -f "$C/aero"
rm -rf "$C/snap" && mkdir -p "$C/snap/.carry"
git archive HEAD src tests/cuda bench | tar -x -C "$C/snap"
cp -r "$ROOT/.carry/include" "$C/snap/.carry/include"
echo "prepared $C from $(git rev-parse --short HEAD): $(du -sh "$C" | cut -f1)"
