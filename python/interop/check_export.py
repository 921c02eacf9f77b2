#!/usr/bin/env python3
"""Checks that directories written by `aero export hf` load with transformers' from_pretrained
and reproduce the logits of the original fixture.

    python3 python/interop/check_export.py EXPORTED_ROOT FIXTURE_ROOT
EXPORTED_ROOT/<case>/ is the export of the aero import of FIXTURE_ROOT/<case>/, whose
expected.json holds the input ids and the library's logits. Prints one line per case and
exits 1 if any case differs by more than 1e-4.
"""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM


def main():
    exported, fixtures = sys.argv[1], sys.argv[2]
    bad = 0
    for case in sorted(os.listdir(exported)):
        exp = json.load(open(os.path.join(fixtures, case, "expected.json")))
        model = AutoModelForCausalLM.from_pretrained(os.path.join(exported, case),
                                                     torch_dtype=torch.float32)
        model.eval()
        with torch.no_grad():
            logits = model(torch.tensor(exp["input_ids"])).logits
        err = (logits - torch.tensor(exp["logits"])).abs().max().item()
        ok = err < 1e-4
        bad += not ok
        print(f"{case}: {type(model).__name__} max |logit diff| = {err:.3g} {'OK' if ok else 'FAIL'}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
