"""The ``clean-articles`` flow: discover inputs, clean them shard by shard, check the accounting.

Thin by design: every decision about text lives in ``cleaners``. One task per shard (seconds of
work, never one per article); tasks take file lists and return small stats, never article text.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any

import pyarrow.parquet as pq
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.futures import as_completed
from pydantic import Field

from cleaners.readers import InputFile, discover
from cleaners.rulepack import load_rules
from cleaners.shard import DEFAULT_SHARD_BYTES, PIPELINE_VERSION, Shard, article_paths, plan_shards, process_shard
from flows import progress


class AccountingError(RuntimeError):
    """Written rows do not add up to the inputs read: something was lost."""


@task(name="clean-shard", persist_result=False, retries=2, retry_delay_seconds=[2, 10])
def clean_shard(shard_id: str, files: list[dict[str, Any]], output: str, rules: list[str] | None,
                ingested_at: datetime) -> dict[str, Any]:
    """Clean one shard into ``articles/`` and ``rejects/``; returns its stats (no text)."""
    shard = Shard(shard_id, tuple(InputFile(**f) for f in files))
    stats = process_shard(shard, output, load_rules(rules), ingested_at)
    return stats.to_dict()


def _rows_on_disk(output: str, shard_id: str) -> tuple[int, int]:
    articles, rejects = article_paths(output, shard_id)
    return pq.read_metadata(articles).num_rows, pq.read_metadata(rejects).num_rows


def _summary_markdown(summary: dict[str, Any], removed: Counter[str], lines: Counter[str]) -> str:
    out = [
        "# clean-articles run",
        "",
        f"- inputs: **{summary['inputs']}** = articles **{summary['articles']}** + rejects **{summary['rejects']}**",
        f"- files: {summary['files']}, shards: {summary['shards']}, {summary['mb']:.2f} MB",
        f"- output: `{summary['output']}`",
        f"- rules: `{summary['rules_version']}`",
        "",
        "## Removals per rule",
        "",
        "| rule | lines |",
        "|---|---:|",
        *[f"| `{rule}` | {n} |" for rule, n in removed.most_common()],
        "",
        "## Most frequent removed lines",
        "",
        "| line | times |",
        "|---|---:|",
        *[f"| {line.replace('|', '&#124;')[:120]} | {n} |" for line, n in lines.most_common(20)],
    ]
    if summary["reject_reasons"]:
        out += ["", "## Rejects", "", "| reason | inputs |", "|---|---:|",
                *[f"| `{k}` | {v} |" for k, v in sorted(summary["reject_reasons"].items())]]
    return "\n".join(out)


@flow(name="clean-articles")
def clean_articles(
    input: list[str] | str,
    output: str,
    rules: list[str] | None = None,
    shard_mb: Annotated[float, Field(gt=0, le=1024)] = DEFAULT_SHARD_BYTES / 2**20,
) -> dict[str, Any]:
    """Clean raw scraped articles under ``input`` (files, folders, globs) into Parquet under ``output``.

    ``rules``: rule-pack files or folders (default: the packs shipped with boilerstrip).
    ``shard_mb``: input megabytes per task.
    """
    logger = get_run_logger()
    ruleset = load_rules(rules)  # a broken pack fails the run here, before any work
    files = discover([input] if isinstance(input, str) else input)
    shards = plan_shards(files, target_bytes=int(shard_mb * 2**20))
    ingested_at = datetime.now(UTC)
    reporter = progress.current(progress.LogReporter(logger))
    reporter.start(len(files), sum(f.size for f in files))
    logger.info("%d files in %d shards -> %s (rules %s)", len(files), len(shards), output, ruleset.version)

    futures = [
        clean_shard.with_options(task_run_name=f"clean-shard-{s.shard_id}").submit(
            s.shard_id, [_file_dict(f) for f in s.files], output, rules, ingested_at
        )
        for s in shards
    ]
    results: list[dict[str, Any]] = []
    for future in as_completed(futures):
        stats = future.result()
        results.append(stats)
        reporter.advance(stats["n_inputs"], stats["n_bytes"])
    reporter.finish()

    removed: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for stats in results:
        removed.update(stats["removed_by_rule"])
        lines.update(stats["top_removed_lines"])
        reasons.update(stats["reject_reasons"])
    inputs = sum(s["n_inputs"] for s in results)
    on_disk = [_rows_on_disk(output, s["shard_id"]) for s in results]
    articles = sum(a for a, _ in on_disk)
    rejects = sum(r for _, r in on_disk)
    summary = {
        "inputs": inputs, "articles": articles, "rejects": rejects, "files": len(files),
        "shards": len(shards), "mb": sum(f.size for f in files) / 1e6, "output": output,
        "rules_version": ruleset.version, "pipeline_version": PIPELINE_VERSION,
        "reject_reasons": dict(reasons), "removed_by_rule": dict(removed),
    }
    create_markdown_artifact(key="clean-articles-summary", markdown=_summary_markdown(summary, removed, lines),
                             description="Counts, removals per rule, most frequent removed lines")
    if inputs != articles + rejects:
        raise AccountingError(f"inputs ({inputs}) != articles ({articles}) + rejects ({rejects}) in {output}")
    logger.info("accounting ok: inputs %d == articles %d + rejects %d", inputs, articles, rejects)
    return summary


def _file_dict(f: InputFile) -> dict[str, Any]:
    return {"path": f.path, "relpath": f.relpath, "source": f.source, "size": f.size}
