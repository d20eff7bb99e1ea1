"""Cleaning quality on the labelled dev set, scored by the set's own score.py.

Cleans ``raw_text`` (rendering A) and ``raw_text_alt`` (rendering B) of every dev record (``id``,
``site`` as source) and prints score.py's summary for each, next to keep-everything, with the speed.
The prediction for a document is its title and text, as an analyst reads the row.

    python bench/quality.py [--eval-dir ../shared/eval] [--rendering raw_text] [--limit N]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cleaners import clean_document, load_rules

DEFAULT_EVAL_DIR = Path(os.environ.get("EVAL_DIR", Path(__file__).resolve().parents[2] / "shared" / "eval"))


def load_records(eval_dir: Path, limit: int | None) -> list[dict]:
    path = eval_dir / "dev.jsonl.gz"
    if not path.exists():
        sys.exit(f"error: {path} not found; pass --eval-dir or set EVAL_DIR to the folder with dev.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    return records[:limit] if limit else records


def predict(records: list[dict], rendering: str) -> tuple[list[dict], float]:
    rules = load_rules()
    started = time.perf_counter()
    out = []
    for record in records:
        result = clean_document(record[rendering], rules, source=record["site"])
        text = f"{result.title}\n\n{result.text}" if result.title else result.text
        out.append({"id": record["id"], "text": text})
    return out, time.perf_counter() - started


def score(eval_dir: Path, predictions: list[dict], extra: list[str]) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as handle:
        for row in predictions:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    try:
        done = subprocess.run([sys.executable, str(eval_dir / "score.py"), str(eval_dir / "dev.jsonl.gz"),
                               handle.name, *extra], capture_output=True, text=True, check=True)
    finally:
        os.unlink(handle.name)
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--rendering", choices=["raw_text", "raw_text_alt", "both"], default="both")
    parser.add_argument("--limit", type=int, help="only the first N records (a quick look; not a score)")
    parser.add_argument("--baseline", action="store_true", help="also score keep-everything")
    args = parser.parse_args()
    records = load_records(args.eval_dir, args.limit)
    renderings = ["raw_text", "raw_text_alt"] if args.rendering == "both" else [args.rendering]
    for rendering in renderings:
        if args.baseline:
            keep = [{"id": r["id"], "text": r[rendering]} for r in records]
            print(f"## keep everything, {rendering}\n{score(args.eval_dir, keep, [])}")
        predictions, seconds = predict(records, rendering)
        print(f"## boilerstrip, {rendering}: {len(records)} docs in {seconds:.1f} s = "
              f"{len(records) / seconds:.0f} docs/s (one core)")
        print(score(args.eval_dir, predictions, []))


if __name__ == "__main__":
    main()
