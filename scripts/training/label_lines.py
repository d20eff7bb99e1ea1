"""Prepare line-level training data: split both renderings into lines and label each
line content(0)/junk(1) by in-order token alignment with the gold (difflib on tokens).
A line is content when > 50% of its tokens are aligned to gold tokens."""
from __future__ import annotations

import difflib
import gzip
import json
import os
import pickle
import re
import sys
import time
import unicodedata
from multiprocessing import Pool

TOK = re.compile(r"\w+")
def toks(s: str) -> list[str]:
    return TOK.findall(unicodedata.normalize("NFKC", s).casefold())

def label_lines(lines: list[str], gold_t: list[str]) -> list[int]:
    lt = [toks(l) for l in lines]
    flat, owner = [], []
    for i, t in enumerate(lt):
        flat.extend(t); owner.extend([i] * len(t))
    matched = [0] * len(lines)
    sm = difflib.SequenceMatcher(None, flat, gold_t, autojunk=False)
    for a, _b, n in sm.get_matching_blocks():
        for k in range(a, a + n):
            matched[owner[k]] += 1
    lab = []
    for i, t in enumerate(lt):
        if not t: lab.append(-1)           # no tokens: irrelevant line
        else: lab.append(0 if matched[i] / len(t) > 0.5 else 1)
    return lab

def proc(line: str) -> dict:
    r = json.loads(line)
    g = toks(r["gold_body"])
    out = {"id": r["id"], "dataset": r["dataset"], "site": r["site"]}
    A = [l for l in r["raw_text"].split("\n") if l.strip()]
    B = [l for l in r["raw_text_alt"].split("\n") if l.strip()]
    out["A"] = A; out["B"] = B
    out["yA"] = label_lines(A, g); out["yB"] = label_lines(B, g)
    return out

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EVAL_DIR = os.environ.get("EVAL_DIR", "")  # the labelled dev set's folder (dev.jsonl.gz, score.py): not shipped
WORK_DIR = os.environ.get("WORK_DIR", os.path.join(ROOT, ".state", "training"))

if __name__ == "__main__":
    if not os.path.isfile(os.path.join(EVAL_DIR, "dev.jsonl.gz")):
        sys.exit("error: set EVAL_DIR to the folder holding the labelled dev set (dev.jsonl.gz and score.py)")
    t = time.time()
    os.makedirs(WORK_DIR, exist_ok=True)
    lines = gzip.open(os.path.join(EVAL_DIR, "dev.jsonl.gz"), "rt").read().split("\n")
    lines = [l for l in lines if l.strip()]
    lim = int(sys.argv[1]) if len(sys.argv) > 1 else None
    if lim: lines = lines[:lim]
    with Pool(2) as p: docs = p.map(proc, lines, chunksize=4)
    pickle.dump(docs, open(os.path.join(WORK_DIR, "lines.pkl" if not lim else "lines_small.pkl"), "wb"))
    print(len(docs), time.time() - t)
