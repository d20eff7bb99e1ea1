"""Score saved OOF probabilities (oof_<tag>.npz from train.py) with different decision
thresholds and safety-valve settings.  One global setting for all datasets/renderings.

    python eval_oof.py TAG [--stage p2]
                       [--grid "thr,valve,fallback[,cautious,uncertain_share[,keep_all[,only_uncertain]]];..."]

The cleaner's own setting: "0.6,0.85,0.95,0.8,0.2,keep_all,only_uncertain" (threshold 0.6; uncertainty valve:
cautious threshold 0.8 when uncertain drops hold > 20 % of the words, or when no line is at 0.8 or above; safety
valve at 85 % removed: threshold 0.95, then nothing removed).
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from cleaners import linejudge as lj

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.environ.get("WORK_DIR", os.path.join(ROOT, ".state", "training"))
EVAL_DIR = os.environ.get("EVAL_DIR", "")  # the labelled dev set's folder (dev.jsonl.gz, score.py): not shipped
if not os.path.isfile(os.path.join(EVAL_DIR, "dev.jsonl.gz")):
    sys.exit("error: set EVAL_DIR to the folder holding the labelled dev set (dev.jsonl.gz and score.py)")
ap = argparse.ArgumentParser()
ap.add_argument("tag")
ap.add_argument("--stage", default="p2")
ap.add_argument("--grid", default="0.6,none,none;0.6,0.85,0.95;0.6,0.85,0.95,0.8,0.2,keep_all;"
                                  "0.6,0.85,0.95,0.8,0.2,keep_all,only_uncertain")
args = ap.parse_args()

docs = pickle.load(open(os.path.join(HERE, "lines.pkl"), "rb"))
oof = np.load(os.path.join(HERE, f"oof_{args.tag}.npz"))
batches = {r: lj.Batch([d[r] for d in docs]) for r in ("A", "B")}


def run(r: str, thr: float, valve: float | None, fb: float | None, cautious: float | None = None,
        uncertain: float | None = None, keep_all: bool = False, only_uncertain: bool = False) -> tuple[float, int, dict]:
    b = batches[r]
    texts = lj.assemble(b, oof[f"{args.stage}_{r}"], len(docs), thr, valve, fb, cautious, uncertain, keep_all,
                        only_uncertain)
    path = os.path.join(HERE, f"oofeval_{args.tag}_{r}.jsonl")
    with open(path, "w") as f:
        for d, t in zip(docs, texts, strict=False):
            f.write(json.dumps({"id": d["id"], "text": t}) + "\n")
    subprocess.run([sys.executable, os.path.join(EVAL_DIR, "score.py"), os.path.join(EVAL_DIR, "dev.jsonl.gz"), path,
                    "--json", path + ".json"], capture_output=True, text=True, check=True)
    s = json.load(open(path + ".json"))
    return s["overall_macro"]["f1"], s["all_docs"]["catastrophic"], s


for g in args.grid.split(";"):
    thr, valve, fb, *more = g.split(",")
    thr = float(thr); valve = None if valve == "none" else float(valve); fb = None if fb == "none" else float(fb)
    if len(more) == 1:
        raise SystemExit(f"grid entry {g!r}: give the cautious threshold and the uncertain share together")
    cautious, uncertain = (float(more[0]), float(more[1])) if more else (None, None)
    keep_all = "keep_all" in more[2:]
    only_uncertain = "only_uncertain" in more[2:]
    res = []
    for r in ("A", "B"):
        f1, cat, s = run(r, thr, valve, fb, cautious, uncertain, keep_all, only_uncertain)
        per = " ".join(f"{k}={v['f1']:.3f}" for k, v in s["datasets"].items())
        res.append(f"{r}: F1={f1:.4f} cat={cat} [{per}]")
    print(f"thr={thr} valve={valve} fallback={fb} cautious={cautious} uncertain={uncertain} keep_all={keep_all} "
          f"only_uncertain={only_uncertain} | "
          + " | ".join(res), flush=True)
