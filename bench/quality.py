"""Cleaning quality on the labelled dev set, scored by the set's own score.py, in one run.

For each rendering (``raw_text``: block lines; ``raw_text_alt``: one text node per line) it cleans
every dev record as one batch (``site`` is the source, as a real run's folders or URLs would be),
scores it, and prints a table next to the baselines: keep-everything and datatrove's C4 line rules
(``pip install 'boilerstrip[bench]'``; skipped with a note when missing). Speed is documents per second
of the whole cleaner (both passes) on one core, after the compiled kernels are loaded (once per process,
~0.7 s). The prediction for a document is its title and text,
as an analyst reads the row.

    python bench/quality.py [--eval-dir DIR] [--rendering raw_text|raw_text_alt|both] [--limit N]
                            [--no-baselines] [--by-dataset] [--rules PATH ...] [--save DIR]

A rule writer's check of a change on the dev set, page by page: run with ``--save before`` on the old rules and
``--save after`` with the new ones (``--rules cleaners/rules --rules my-pack.toml``), then
``python bench/compare_predictions.py before after``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.baselines import BASELINES, MissingBenchDependencyError
from cleaners import load_rules
from cleaners.batch import BatchItem, clean_batch, warm_up
from cleaners.linemodel import default_judge
from cleaners.rulepack import RulePackError, RuleSet

# The labelled dev set is not part of the repository: its folder (dev.jsonl.gz and score.py) is named by --eval-dir
# or by EVAL_DIR.
DEFAULT_EVAL_DIR = Path(os.environ["EVAL_DIR"]) if os.environ.get("EVAL_DIR") else None
NO_EVAL_DIR = ("error: no dev set given; pass --eval-dir DIR or set EVAL_DIR to the folder holding the labelled dev "
               "set (dev.jsonl.gz and its score.py; see the README's 'Measuring quality')")


def load_records(eval_dir: Path | None, limit: int | None) -> list[dict]:
    if eval_dir is None:
        sys.exit(NO_EVAL_DIR)
    path = eval_dir / "dev.jsonl.gz"
    if not path.exists():
        sys.exit(f"error: {path} not found; pass --eval-dir or set EVAL_DIR to the folder with dev.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    return records[:limit] if limit else records


def boilerstrip(rules: RuleSet, save_dir: Path | None = None) -> Callable[[list[dict], str], list[str]]:
    """Both passes over the whole set as one batch. With ``save_dir``, each document's prediction and removed lines
    go to ``save_dir/<rendering>.jsonl`` (bench/compare_predictions.py lists what a change did, page by page)."""

    def run(records: list[dict], rendering: str) -> list[str]:
        results = clean_batch([BatchItem(r["site"], r[rendering]) for r in records], rules, judge=default_judge())
        texts = [f"{res.title}\n\n{res.text}" if res.title else res.text for res in results]
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            with (save_dir / f"{rendering}.jsonl").open("w", encoding="utf-8") as handle:
                for record, text, res in zip(records, texts, results, strict=True):
                    handle.write(json.dumps({"id": record["id"], "text": text, "removed": [list(row) for row in
                                             res.removed_rows], "rules_version": rules.version},
                                            ensure_ascii=False) + "\n")
        return texts

    return run


def per_document(function: Callable[[str], str]) -> Callable[[list[dict], str], list[str]]:
    return lambda records, rendering: [function(r[rendering]) for r in records]


def score(eval_dir: Path, records: list[dict], texts: list[str], by_dataset: bool) -> dict:
    """score.py's figures for ``texts``, the predictions of ``records``, scored on those records only (the scorer
    counts every dev document without a prediction as an empty output: a ``--limit`` run scored near 0)."""
    with tempfile.TemporaryDirectory() as tmp:
        predictions, subset = Path(tmp) / "pred.jsonl", Path(tmp) / "eval.jsonl"
        summary = Path(tmp) / "summary.json"
        with predictions.open("w", encoding="utf-8") as handle:
            for record, text in zip(records, texts, strict=True):
                handle.write(json.dumps({"id": record["id"], "text": text}, ensure_ascii=False) + "\n")
        with subset.open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        done = subprocess.run([sys.executable, str(eval_dir / "score.py"), str(subset),
                               str(predictions), "--json", str(summary)], capture_output=True, text=True, check=True)
        if by_dataset:
            print(done.stdout)
        return json.loads(summary.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--rendering", choices=["raw_text", "raw_text_alt", "both"], default="both")
    parser.add_argument("--limit", type=int, help="only the first N records (a quick look, scored on them alone)")
    parser.add_argument("--no-baselines", action="store_true", help="score boilerstrip only")
    parser.add_argument("--by-dataset", action="store_true", help="print score.py's per-dataset table too")
    parser.add_argument("--rules", action="append", type=Path, metavar="PATH",
                        help="rule packs (files or folders) instead of the shipped ones; repeat to add more "
                             "(the shipped folder is cleaners/rules)")
    parser.add_argument("--save", type=Path, metavar="DIR",
                        help="write boilerstrip's predictions and removed lines to DIR/<rendering>.jsonl")
    args = parser.parse_args()
    try:
        rules = load_rules(args.rules)
    except RulePackError as exc:
        sys.exit(f"error: {exc}")
    records = load_records(args.eval_dir, args.limit)
    renderings = ["raw_text", "raw_text_alt"] if args.rendering == "both" else [args.rendering]
    methods: dict[str, Callable[[list[dict], str], list[str]]] = {
        "boilerstrip": boilerstrip(rules, args.save)}
    if not args.no_baselines:
        methods.update({name: per_document(fn) for name, fn in BASELINES.items()})
    warm_up()  # numba's compilation or cache load, once per process: not in the documents/s
    rows = []
    per_dataset: dict[tuple[str, str], dict] = {}
    for rendering in renderings:
        for name, method in methods.items():
            started = time.perf_counter()
            try:
                texts = method(records, rendering)
            except MissingBenchDependencyError as exc:
                print(f"note: {name} skipped: {exc}")
                continue
            seconds = time.perf_counter() - started
            if args.by_dataset:
                print(f"## {name}, {rendering}")
            summary = score(args.eval_dir, records, texts, args.by_dataset and name == "boilerstrip")
            overall = summary["overall_macro"]
            per_dataset[(name, rendering)] = summary["datasets"]
            rows.append((rendering, name, overall["f1"], overall["p"], overall["r"], overall["catastrophic"],
                         overall["junk_left"], len(records) / seconds))
    print(f"{'rendering':<13} {'method':<16} {'F1':>6} {'P':>6} {'R':>6} {'catas':>6} {'junkLeft':>9} {'docs/s':>8}")
    for rendering, name, f1, p, r, catas, junk, rate in rows:
        print(f"{rendering:<13} {name:<16} {f1:6.3f} {p:6.3f} {r:6.3f} {catas:6d} {junk:9.3f} {rate:8.0f}")
    print("\nper-dataset F1 (boilerstrip):")
    datasets = sorted({d for summary in per_dataset.values() for d in summary})
    print(f"{'rendering':<13} " + " ".join(f"{d[:10]:>10}" for d in datasets))
    for rendering in renderings:
        summary = per_dataset.get(("boilerstrip", rendering), {})
        print(f"{rendering:<13} " + " ".join(f"{summary[d]['f1']:10.3f}" if d in summary else f"{'-':>10}"
                                             for d in datasets))


if __name__ == "__main__":
    main()
