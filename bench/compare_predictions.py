"""What a change did to the dev set, page by page: two folders written by ``bench/quality.py --save``.

    python bench/compare_predictions.py BEFORE AFTER [--eval-dir DIR] [--show 40]

For each rendering saved in both: score.py's overall figures of each side, how many documents changed, and for the
first ``--show`` of them the lines only one side removed, with the rule that removed them. A rule that changes no
page, or only the pages it was written for, shows at once; so does one that eats article text elsewhere.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.quality import DEFAULT_EVAL_DIR

FIGURES = ("f1", "p", "r", "catastrophic", "junk_left")


def read(path: Path) -> dict[str, dict]:
    with path.open(encoding="utf-8") as handle:
        return {row["id"]: row for row in map(json.loads, handle)}


def overall(eval_dir: Path, predictions: Path, ids: set[str]) -> dict:
    """score.py's overall figures over the documents predicted (a ``--limit`` run scores its own documents: the
    scorer counts every other dev document as an empty output)."""
    with tempfile.TemporaryDirectory() as tmp:
        summary, subset = Path(tmp) / "summary.json", Path(tmp) / "eval.jsonl"
        with gzip.open(eval_dir / "dev.jsonl.gz", "rt", encoding="utf-8") as source, \
                subset.open("w", encoding="utf-8") as target:
            target.writelines(line for line in source if json.loads(line)["id"] in ids)
        subprocess.run([sys.executable, str(eval_dir / "score.py"), str(subset), str(predictions),
                        "--json", str(summary)], capture_output=True, text=True, check=True)
        return json.loads(summary.read_text())["overall_macro"]


def removed(row: dict) -> set[tuple[int, str, str]]:
    return {(line_no, text, rule) for line_no, text, rule, _reason in row["removed"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--show", type=int, default=40, help="changed documents to list per rendering")
    args = parser.parse_args()
    renderings = sorted(p.stem for p in args.before.glob("*.jsonl") if (args.after / p.name).exists())
    if not renderings:
        sys.exit(f"error: no <rendering>.jsonl in both {args.before} and {args.after} (write them with "
                 "bench/quality.py --save DIR)")
    for rendering in renderings:
        print(f"## {rendering}")
        before, after = read(args.before / f"{rendering}.jsonl"), read(args.after / f"{rendering}.jsonl")
        if set(before) != set(after):
            sys.exit(f"error: {rendering}: the two folders hold different documents (one was written with --limit?)")
        for side, folder in (("before", args.before), ("after", args.after)):
            figures = overall(args.eval_dir, folder / f"{rendering}.jsonl", set(before))
            print(f"{side:<7} " + "  ".join(f"{name} {figures[name]:.4f}" if isinstance(figures[name], float)
                                            else f"{name} {figures[name]}" for name in FIGURES))
        changed = [doc_id for doc_id in before if before[doc_id]["text"] != after[doc_id]["text"]]
        print(f"documents changed: {len(changed)} of {len(before)}")
        for doc_id in changed[:args.show]:
            only_before = sorted(removed(before[doc_id]) - removed(after[doc_id]))
            only_after = sorted(removed(after[doc_id]) - removed(before[doc_id]))
            print(f"  {doc_id}")
            for label, rows in (("removed before only", only_before), ("removed after only", only_after)):
                for line_no, text, rule in rows[:5]:
                    print(f"    {label}: line {line_no} [{rule}] {text[:90]}")
                if len(rows) > 5:
                    print(f"    {label}: ... {len(rows) - 5} more")
        print()


if __name__ == "__main__":
    main()
