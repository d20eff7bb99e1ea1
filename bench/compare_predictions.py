"""What a change did to the dev set, page by page: two folders written by ``bench/quality.py --save``.

    python bench/compare_predictions.py BEFORE AFTER [--eval-dir DIR] [--show 40]

For each rendering saved in both: score.py's overall figures of each side, how many documents changed, and for the
first ``--show`` of them the lines only one side removed, with the rule that removed them. A rule that changes no
page, or only the pages it was written for, shows at once; so does one that eats article text elsewhere.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.quality import DEFAULT_EVAL_DIR, load_records, score

FIGURES = ("f1", "p", "r", "catastrophic", "junk_left")


def read(path: Path) -> dict[str, dict]:
    with path.open(encoding="utf-8") as handle:
        return {row["id"]: row for row in map(json.loads, handle)}


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
        records = [record for record in load_records(args.eval_dir, None) if record["id"] in before]
        for side, rows in (("before", before), ("after", after)):
            figures = score(args.eval_dir, records, [rows[r["id"]]["text"] for r in records], False)["overall_macro"]
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
