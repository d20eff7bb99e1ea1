"""Reproducible training + out-of-fold-by-site evaluation of the line classifier (cleaners/linejudge.py).

    python scripts/training/train_line_model.py [--folds 5] [--iters1 300] [--depth1 6] [--iters2 150] [--depth2 5]
                    [--lr 0.15] [--weight line|words|doc|mix] [--clean-docs WEIGHT] [--threshold 0.6]
                    [--nested] [--no-final] [--no-score] [--final-from-oof TAG] [--out PATH] [--tag NAME]

The defaults are not the shipped model's settings: docs/line-classifier.md has the commands that trained it.
Needs lines.pkl from label_lines.py (line splits + labels) in WORK_DIR (default .state/training). Writes the
out-of-fold probabilities to oof_<tag>.npz (scored here with score.py unless --no-score; eval_oof.py scores them
for other decision settings), then trains the final model on all data and writes it as JSON to --out (default: the
shipped cleaners/models/line_model.json), checked against CatBoost's own predictions. ``--model mlp`` is for
out-of-fold comparisons only (--no-final): the cleaner explains each removal from the trees' leaves, which an MLP
has not."""
from __future__ import annotations

import argparse
import gzip
import json
import os
import pickle
import re
import subprocess
import sys
import time
from collections.abc import Iterator

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import numpy as np
from catboost import CatBoostClassifier
from sklearn.model_selection import GroupKFold

from cleaners import linejudge as lj

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Working files (labelled lines, out-of-fold predictions) go to WORK_DIR, default .state/training.
HERE = os.environ.get("WORK_DIR", os.path.join(ROOT, ".state", "training"))
EVAL_DIR = os.environ.get("EVAL_DIR", "")  # the labelled dev set's folder (dev.jsonl.gz, score.py): not shipped
if not os.path.isfile(os.path.join(EVAL_DIR, "dev.jsonl.gz")):
    sys.exit("error: set EVAL_DIR to the folder holding the labelled dev set (dev.jsonl.gz and score.py)")
os.makedirs(HERE, exist_ok=True)
SEED = 0

ap = argparse.ArgumentParser()
ap.add_argument("--folds", type=int, default=5)
ap.add_argument("--iters1", type=int, default=300)
ap.add_argument("--depth1", type=int, default=6)
ap.add_argument("--iters2", type=int, default=150)
ap.add_argument("--depth2", type=int, default=5)
ap.add_argument("--lr", type=float, default=0.15)
ap.add_argument("--model", choices=["cb", "mlp"], default="cb")
ap.add_argument("--hidden1", default="64,32")
ap.add_argument("--hidden2", default="32")
ap.add_argument("--epochs", type=int, default=12)
ap.add_argument("--threshold", type=float, default=0.6, help="p(junk) from which a line goes (the shipped 0.6)")
ap.add_argument("--weight", choices=["line", "words", "doc", "mix"], default="line",
                help="training weight of a line: 1 (line), its words (words), or its share of its document's words "
                     "with every document weighing the same (doc; the scorer averages F1 over documents), or the mean "
                     "of line and doc (mix)")
ap.add_argument("--clean-docs", type=float, default=0.0, metavar="WEIGHT",
                help="also train on every dev page's gold body as a document of its own, all of its lines content "
                     "(0: off). The gold documents are weighted like a rendering (--weight, mean line weight 1 over "
                     "their lines), then times WEIGHT: at 0.25 their 145,000 lines carry about 2.5%% of the training "
                     "weight. Real pages end in footers, so without them the model learns that a document's last "
                     "short lines are junk. Scored out of fold on the pages only")
ap.add_argument("--nested", action="store_true", help="stage-2 trained on inner-OOF stage-1 probs (fully honest)")
ap.add_argument("--no-final", action="store_true")
ap.add_argument("--final-from-oof", metavar="TAG",
                help="skip the out-of-fold runs: train only the final model, its stage 2 on the stage-1 OOF "
                     "probabilities saved by an earlier run with the same settings (oof_TAG.npz)")
ap.add_argument("--no-score", action="store_true", help="skip scoring here (use eval_oof.py on oof_<tag>.npz)")
ap.add_argument("--out", default=os.path.join(ROOT, "cleaners", "models", "line_model.json"))
ap.add_argument("--tag", default="run")
args = ap.parse_args()

docs = pickle.load(open(os.path.join(HERE, "lines.pkl"), "rb"))
sites = [d["site"] for d in docs]
ndoc = len(docs)

# ---------------------------------------------------------------- features for both renderings
def gold_documents() -> tuple[list[list[str]], list[list[int]]]:
    """Each dev page's gold body, its non-blank lines, in the order of ``docs``; every line with a word is content."""
    with gzip.open(os.path.join(EVAL_DIR, "dev.jsonl.gz"), "rt", encoding="utf-8") as handle:
        gold = {record["id"]: record["gold_body"] for record in map(json.loads, handle)}
    lines = [[line for line in gold[d["id"]].split("\n") if line.strip()] for d in docs]
    return lines, [[0 if re.search(r"\w", line) else -1 for line in doc] for doc in lines]


RENDERINGS = ("A", "B") + (("G",) if args.clean_docs > 0 else ())
if args.clean_docs > 0:
    gold_lines, gold_labels = gold_documents()
R = {}
for rend in RENDERINGS:
    t = time.time()
    b = lj.Batch(gold_lines if rend == "G" else [d[rend] for d in docs], sources=sites)
    F = lj.base_features(b)
    y = np.concatenate([np.asarray(labels) for labels in (gold_labels if rend == "G" else (d["y" + rend] for d in docs))])
    assert len(y) == len(b.lines), (len(y), len(b.lines))
    words = np.fromiter((len(line.split()) for line in b.lines), np.float64, len(b.lines))
    if args.weight == "line":
        wt = np.ones(len(y))
    elif args.weight == "words":
        wt = np.maximum(words, 1.0)
    else:  # each document weighs the same; within it, lines by their words (mean weight 1 over this rendering's lines)
        doc_words = np.bincount(b.doc_id, weights=words * (y >= 0), minlength=ndoc)
        wt = np.maximum(words, 1.0) / np.maximum(doc_words[b.doc_id], 1.0)
        wt *= (y >= 0).sum() / wt[y >= 0].sum()
        if args.weight == "mix":
            wt = 0.5 * wt + 0.5
    if rend == "G":
        wt = wt * args.clean_docs
    R[rend] = dict(batch=b, F=F, y=y, w=wt)
    print(f"features {rend}: {len(y)} lines in {time.time()-t:.1f}s", flush=True)
names1 = [k for k in R["A"]["F"] if not k.startswith("_")]


def X1_of(rend: str, rows: np.ndarray | None = None) -> np.ndarray:
    X = lj.to_matrix(R[rend]["F"], names1)
    return X


X1 = {r: X1_of(r) for r in R}
fold_of_doc = np.zeros(ndoc, np.int64)
for k, (_, te) in enumerate(GroupKFold(n_splits=args.folds).split(np.zeros(ndoc), groups=sites)):
    fold_of_doc[te] = k
fold_row = {r: fold_of_doc[R[r]["batch"].doc_id] for r in R}


class MLPWrap:
    """sklearn MLP on signed-log standardized features; exportable to linejudge.MLP."""

    def __init__(self, hidden: tuple[int, ...]) -> None:
        self.hidden = hidden

    def fit(self, X: np.ndarray, y: np.ndarray) -> MLPWrap:
        from sklearn.neural_network import MLPClassifier
        Z = np.sign(X) * np.log1p(np.abs(X))
        self.mu = Z.mean(0); self.sd = Z.std(0) + 1e-6
        Z = ((Z - self.mu) / self.sd).astype(np.float32)
        self.m = MLPClassifier(hidden_layer_sizes=self.hidden, batch_size=1024, learning_rate_init=1e-3,
                               max_iter=args.epochs, alpha=1e-4, random_state=SEED, shuffle=True,
                               early_stopping=False, tol=0, n_iter_no_change=1000)
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.m.fit(Z, y)
        return self

    def export(self, names: list[str]) -> dict:
        layers = [[W.astype(np.float32).round(5).tolist(), b.astype(np.float32).round(5).tolist()]
                  for W, b in zip(self.m.coefs_, self.m.intercepts_, strict=False)]
        return {"type": "mlp", "features": names, "mu": self.mu.round(6).tolist(), "sd": self.sd.round(6).tolist(),
                "layers": layers}

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        ev = lj.MLP(self.export([str(i) for i in range(X.shape[1])]))
        p = 1 / (1 + np.exp(-ev.raw(X)))
        return np.column_stack([1 - p, p])


def fit(X: np.ndarray, y: np.ndarray, iters: int, depth: int, seed: int = SEED,
        w: np.ndarray | None = None) -> CatBoostClassifier | MLPWrap:
    if args.model == "mlp":
        hid = tuple(int(x) for x in (args.hidden1 if depth == args.depth1 and iters == args.iters1 else args.hidden2).split(","))
        return MLPWrap(hid).fit(X, y)
    m = CatBoostClassifier(iterations=iters, depth=depth, learning_rate=args.lr, border_count=64,
                           random_seed=seed, thread_count=2, verbose=0, allow_writing_files=False)
    m.fit(X, y, sample_weight=w)
    return m


def train_rows(rend: str, mask_docs_fold: np.ndarray) -> np.ndarray:
    y = R[rend]["y"]
    return mask_docs_fold & (y >= 0)


def stage1_oof(folds_subset: list[int]) -> dict[str, np.ndarray]:
    """OOF stage-1 probs (over folds in folds_subset; rows of other folds untouched)."""
    P = {r: np.full(len(R[r]["y"]), np.nan) for r in R}
    for k in folds_subset:
        trX = np.vstack([X1[r][train_rows(r, np.isin(fold_row[r], folds_subset) & (fold_row[r] != k))] for r in R])
        trY = np.concatenate([R[r]["y"][train_rows(r, np.isin(fold_row[r], folds_subset) & (fold_row[r] != k))] for r in R])
        trW = np.concatenate([R[r]["w"][train_rows(r, np.isin(fold_row[r], folds_subset) & (fold_row[r] != k))] for r in R])
        m = fit(trX, trY, args.iters1, args.depth1, w=trW)
        for r in R:
            te = fold_row[r] == k
            P[r][te] = m.predict_proba(X1[r][te])[:, 1]
    return P


def X2_of(rend: str, p1: np.ndarray) -> tuple[np.ndarray, list[str]]:
    G = lj.stage2_features(R[rend]["F"], p1)
    names2 = [k for k in G]
    return lj.to_matrix(G, names2), names2


# What the OOF probabilities depend on: a final model may reuse them only with the same settings and lines.
OOF_SETTINGS = json.dumps({k: getattr(args, k) for k in ("folds", "iters1", "depth1", "iters2", "depth2", "lr", "model",
                                                          "hidden1", "hidden2", "epochs", "weight", "nested", "clean_docs")}
                          | {"lines": {r: len(R[r]["y"]) for r in R}, "labels": {r: int(R[r]["y"].sum()) for r in R}},
                          sort_keys=True)
if args.model == "mlp" and not args.no_final:
    sys.exit("--model mlp is for out-of-fold comparisons (add --no-final): the cleaner explains every removal from "
             "oblivious trees' leaves (cleaners/linemodel.py), which an MLP has not")
if args.model == "mlp" and args.clean_docs > 0:
    sys.exit("--clean-docs needs training weights, which only CatBoost (--model cb) implements")
if args.model == "mlp" and args.weight != "line":
    sys.exit("--weight is only implemented for CatBoost (--model cb)")
if args.final_from_oof:
    saved = np.load(os.path.join(HERE, f"oof_{args.final_from_oof}.npz"))
    if "settings" not in saved.files or str(saved["settings"]) != OOF_SETTINGS:
        sys.exit(f"oof_{args.final_from_oof}.npz was made with other settings or lines; run the OOF step again.\n"
                 f"  saved: {saved['settings'] if 'settings' in saved.files else 'none'}\n  now:   {OOF_SETTINGS}")
    P1 = {r: saved[f"p1_{r}"] for r in R}
    P2 = {r: saved[f"p2_{r}"] for r in R}
    args.no_score = True
else:
    t0 = time.time()
    allf = list(range(args.folds))
    P1 = stage1_oof(allf)  # OOF stage-1 for all rows
    print(f"stage1 OOF done {time.time()-t0:.0f}s", flush=True)
    P2 = {r: np.full(len(R[r]["y"]), np.nan) for r in R}
    for k in allf:
        if args.nested:
            inner = [f for f in allf if f != k]
            Pin = stage1_oof(inner)
            src_p = {r: np.where(fold_row[r] == k, P1[r], Pin[r]) for r in R}
        else:
            src_p = P1
        X2 = {}
        for r in R:
            X2[r], names2 = X2_of(r, src_p[r])
        trX = np.vstack([X2[r][train_rows(r, fold_row[r] != k)] for r in R])
        trY = np.concatenate([R[r]["y"][train_rows(r, fold_row[r] != k)] for r in R])
        trW = np.concatenate([R[r]["w"][train_rows(r, fold_row[r] != k)] for r in R])
        m2 = fit(trX, trY, args.iters2, args.depth2, w=trW)
        for r in R:
            te = fold_row[r] == k
            P2[r][te] = m2.predict_proba(X2[r][te])[:, 1]
    print(f"stage2 OOF done {time.time()-t0:.0f}s", flush=True)
    np.savez_compressed(os.path.join(HERE, f"oof_{args.tag}.npz"), settings=np.array(OOF_SETTINGS),
                        **{f"p1_{r}": P1[r] for r in R}, **{f"p2_{r}": P2[r] for r in R})


def score(rend: str, p: np.ndarray, thr: float, tag: str,
          valve: tuple[float, float] | None = None) -> tuple[float, int, str]:
    b = R[rend]["batch"]
    texts = lj.assemble(b, p, ndoc, thr, *(valve or (None, None)))
    path = os.path.join(HERE, f"pred_{tag}_{rend}.jsonl")
    with open(path, "w") as f:
        for d, t in zip(docs, texts, strict=False):
            f.write(json.dumps({"id": d["id"], "text": t}) + "\n")
    out = subprocess.run([sys.executable, os.path.join(EVAL_DIR, "score.py"), os.path.join(EVAL_DIR, "dev.jsonl.gz"), path,
                          "--json", path + ".summary.json"], capture_output=True, text=True, check=True).stdout
    f1 = float(out.strip().split("overall_f1=")[-1])
    s = json.load(open(path + ".summary.json"))
    cat = s["all_docs"]["catastrophic"]
    return f1, cat, out


def find_cat(s: dict) -> list[tuple[str, float]]:
    # summary json: find catastrophic count for all docs
    def walk(o: object) -> Iterator[tuple[str, float]]:
        if isinstance(o, dict):
            for k, v in o.items():
                if "catast" in k.lower() and isinstance(v, (int, float)):
                    yield k, v
                else:
                    yield from walk(v)
        elif isinstance(o, list):
            for v in o:
                yield from walk(v)
    return list(walk(s))


for stage, P in (("stage1", P1), ("stage2", P2)):
    if args.no_score:
        break
    for thr in ((0.5,) if stage == "stage1" else (0.4, 0.5, 0.6)):
        res = []
        for r in ("A", "B"):  # the pages; "G" (clean documents) is training data only
            f1, cat, _ = score(r, P[r], thr, f"{args.tag}_{stage}_t{thr}")
            res.append(f"{r}: F1={f1:.4f} cat={cat}")
        print(stage, "thr", thr, " | ".join(res), flush=True)

if args.no_final:
    sys.exit(0)
# ---------------------------------------------------------------- final model on all data
m1 = fit(np.vstack([X1[r][R[r]["y"] >= 0] for r in R]), np.concatenate([R[r]["y"][R[r]["y"] >= 0] for r in R]),
         args.iters1, args.depth1, w=np.concatenate([R[r]["w"][R[r]["y"] >= 0] for r in R]))
X2 = {}
for r in R:
    X2[r], names2 = X2_of(r, P1[r])  # stage 2 trained on OOF stage-1 probs (stacking)
m2 = fit(np.vstack([X2[r][R[r]["y"] >= 0] for r in R]), np.concatenate([R[r]["y"][R[r]["y"] >= 0] for r in R]),
         args.iters2, args.depth2, w=np.concatenate([R[r]["w"][R[r]["y"] >= 0] for r in R]))


def export(m: CatBoostClassifier, names: list[str]) -> dict:
    tmp = os.path.join(HERE, "_tmp_cb.json")
    m.save_model(tmp, format="json")
    j = json.load(open(tmp)); os.remove(tmp)
    fmap = {f["flat_feature_index"]: f["feature_index"] for f in j["features_info"]["float_features"]}
    sf, sb, lv, wt = [], [], [], []
    for t in j["oblivious_trees"]:
        sf.append([fmap.get(s["float_feature_index"], s["float_feature_index"]) for s in t["splits"]])
        sb.append([s["border"] for s in t["splits"]])
        lv.append([round(v, 6) for v in t["leaf_values"]])
        wt.append([round(v, 2) for v in t.get("leaf_weights", [])])
    sc = j.get("scale_and_bias", [1, [0]])
    assert sc[0] == 1
    bias = sc[1][0] if isinstance(sc[1], list) else sc[1]
    d = {"features": names, "bias": bias, "split_f": sf, "split_b": sb, "leaves": lv, "weights": wt}
    return d


TRAIN_SETTINGS = {k: v for k, v in vars(args).items() if k != "out"}  # no machine paths in the shipped file
if args.model == "mlp":
    model = {"version": 1, "threshold": args.threshold, "stage1": m1.export(names1), "stage2": m2.export(names2), "train": TRAIN_SETTINGS}
else:
    model = {"version": 1, "threshold": args.threshold, "stage1": export(m1, names1), "stage2": export(m2, names2),
             "train": TRAIN_SETTINGS}
    # verify numpy evaluator == catboost
    ev = lj.Oblivious(model["stage1"])
    chk = X1["A"][:5000]
    d1 = np.abs(ev.raw(chk) - m1.predict(chk, prediction_type="RawFormulaVal")).max()
    print("numpy vs catboost max |diff| stage1:", d1)
json.dump(model, open(args.out, "w"), separators=(",", ":"))
print("wrote", args.out, os.path.getsize(args.out), "bytes")
