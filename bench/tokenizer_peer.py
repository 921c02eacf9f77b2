#!/usr/bin/env python3
"""Peers for aero's tokenizer, run with the GPU machine's Python (tiktoken, tokenizers).

(a) tiktoken's GPT-2 encoding speed, single thread, on a text file, and (optionally) that
    tiktoken's ids equal aero's:
      python3 bench/tokenizer_peer.py tiktoken --text FILE [--aero-ids IDS] [--repeat 5]
(b) a tokenizer.json written by `aero tokenizer train`, loaded by the `tokenizers` library,
    encodes the text exactly as aero does:
      python3 bench/tokenizer_peer.py hf --json tokenizer.json --text FILE --aero-ids IDS

IDS is the output of `aero tokenize --tokenizer gpt2|tokenizer.json < FILE > IDS` (space-
separated ids). Prints a table line and one JSON line; exits 1 on any mismatch.
"""
import argparse
import json
import os
import sys
import time

# One thread for tiktoken's Rust side (encode_ordinary is single-threaded already; this makes
# sure no pool is used) and for tokenizers.
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def gpt2_encoding(gpt2_dir):
    """tiktoken's gpt2 encoding; offline (no download possible), the same encoding rebuilt from
    GPT-2's own encoder.json: tiktoken's mergeable ranks for gpt2 are exactly these ids."""
    import tiktoken
    try:
        return tiktoken.get_encoding("gpt2"), "tiktoken.get_encoding('gpt2')"
    except Exception as e:  # no network and no cached file
        why = f"{type(e).__name__}"
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):  # GPT-2's bytes_to_unicode
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    byte_of = {chr(c): b for b, c in zip(bs, cs)}
    with open(os.path.join(gpt2_dir, "encoder.json"), encoding="utf-8") as f:
        encoder = json.load(f)
    ranks = {bytes(byte_of[ch] for ch in tok): i for tok, i in encoder.items() if tok != "<|endoftext|>"}
    pat = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    enc = tiktoken.Encoding(name="gpt2", pat_str=pat, mergeable_ranks=ranks,
                            special_tokens={"<|endoftext|>": 50256}, explicit_n_vocab=50257)
    return enc, f"tiktoken.Encoding from {gpt2_dir}/encoder.json (get_encoding failed: {why})"


def read_ids(path):
    with open(path) as f:
        return [int(x) for x in f.read().split()]


def compare(name, got, want):
    if got == want:
        print(f"{name}: identical ({len(got)} tokens)")
        return True
    n = min(len(got), len(want))
    i = next((k for k in range(n) if got[k] != want[k]), n)
    print(f"{name}: MISMATCH at token {i}: peer {got[max(0, i - 3):i + 5]} aero {want[max(0, i - 3):i + 5]}"
          f" (lengths {len(got)} vs {len(want)})")
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["tiktoken", "hf"])
    ap.add_argument("--text", required=True)
    ap.add_argument("--aero-ids")
    ap.add_argument("--json", help="tokenizer.json (mode hf)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--gpt2-dir", default="data/tokenizers/gpt2",
                    help="encoder.json for tiktoken when it cannot download its gpt2 file")
    a = ap.parse_args()
    with open(a.text, encoding="utf-8") as f:
        text = f.read()
    nbytes = len(text.encode("utf-8"))
    ok = True
    result = {"mode": a.mode, "text": a.text, "bytes": nbytes}
    if a.mode == "tiktoken":
        import tiktoken
        enc, how = gpt2_encoding(a.gpt2_dir)
        print("tiktoken encoding:", how)
        result["encoding"] = how
        ids = enc.encode_ordinary(text)  # warm-up (and the ids to compare)
        best_wall = best_cpu = float("inf")
        for _ in range(a.repeat):
            w0, c0 = time.perf_counter(), time.process_time()
            enc.encode_ordinary(text)
            best_wall = min(best_wall, time.perf_counter() - w0)
            best_cpu = min(best_cpu, time.process_time() - c0)
        result.update(tiktoken=tiktoken.__version__, tokens=len(ids),
                      mb_per_s_wall=nbytes / best_wall / 1e6, mb_per_s_cpu=nbytes / best_cpu / 1e6)
        print(f"tiktoken {tiktoken.__version__} gpt2 encode_ordinary, 1 thread: "
              f"{result['mb_per_s_wall']:.2f} MB/s wall, {result['mb_per_s_cpu']:.2f} MB/s CPU "
              f"(best of {a.repeat}, {nbytes / 1e6:.2f} MB, {len(ids)} tokens)")
        if a.aero_ids:
            ok = compare("tiktoken gpt2 vs aero", ids, read_ids(a.aero_ids))
    else:
        import tokenizers
        if not a.json or not a.aero_ids:
            ap.error("mode hf needs --json and --aero-ids")
        if "<|endoftext|>" in text:
            print("warning: the text contains <|endoftext|>, which tokenizers treats as the special "
                  "token and aero as plain text; expect a mismatch there")
        tok = tokenizers.Tokenizer.from_file(a.json)
        w0 = time.perf_counter()
        ids = tok.encode(text, add_special_tokens=False).ids
        result.update(tokenizers=tokenizers.__version__, tokens=len(ids),
                      mb_per_s_wall=nbytes / (time.perf_counter() - w0) / 1e6)
        ok = compare(f"tokenizers {tokenizers.__version__} from_file({a.json}) vs aero", ids, read_ids(a.aero_ids))
        back = tok.decode(ids)
        if back != text:
            print("tokenizers decode(encode(text)) != text")
            ok = False
    result["identical"] = ok
    print(json.dumps(result))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
