"""The ``clean-articles`` flow: plan, count lines, clean shards, commit, check the accounting.

Thin by design: every decision about text lives in ``cleaners``. One task per shard (seconds of
work, never one per article); tasks take file lists and paths and return small stats, never text.
The state that makes runs incremental and idempotent lives with the output (``cleaners.store``).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import socket
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.futures import as_completed
from prefect.settings import PREFECT_API_URL
from pydantic import Field

from cleaners.ingest import select_changed
from cleaners.linemodel import default_judge
from cleaners.readers import InputFile, discover
from cleaners.rulepack import load_rules
from cleaners.shard import DEFAULT_SHARD_BYTES, PIPELINE_VERSION, Shard, count_shard, plan_shards, process_shard
from cleaners.store import OutputStore, partition_of, rows_in
from flows import progress, worker_cache
from flows.runners import make_task_runner, resolve_runner_name

# Delays between the two retries of a shard's I/O (seconds); BOILERSTRIP_RETRY_DELAYS="2,10" to change.
RETRY_DELAYS = [float(x) for x in os.environ.get("BOILERSTRIP_RETRY_DELAYS", "2,10").split(",") if x.strip()]


class RuleChangeError(RuntimeError):
    """The rule packs on disk are not the ones the run was planned with."""


class InstallationMismatchError(RuntimeError):
    """A worker runs another version of boilerstrip's cleaning than the run that planned its shard."""


def _check_installation(plan: dict[str, Any]) -> None:
    """Refuse a shard planned by another pipeline version: its rows would carry this worker's version, and every
    later run would clean them again (a Dask worker on another installation)."""
    planned = plan.get("pipeline_version")
    if planned and planned != PIPELINE_VERSION:
        raise InstallationMismatchError(
            f"this worker ({socket.gethostname()}) runs boilerstrip pipeline {PIPELINE_VERSION} and the run was "
            f"planned with {planned}: install the same boilerstrip on every worker (README, Scale-out) and "
            "run again; the shards already committed are kept")


class AccountingError(RuntimeError):
    """Written rows do not add up to the inputs read: something was lost."""


class WorkOrderMissingError(RuntimeError):
    """A worker cannot read its shard's work order: the output is not storage every worker reaches."""


def _load_plan(plan_path: str, output: str) -> tuple[OutputStore, Shard, dict[str, Any]]:
    store = OutputStore.open(output)
    try:
        plan = store.read_plan(plan_path)
    except FileNotFoundError as exc:
        raise WorkOrderMissingError(
            f"this worker ({socket.gethostname()}) cannot read its shard's work order {plan_path}: the output "
            f"{_without_userinfo(output)} must be storage every worker reaches (a folder they all mount, or object "
            "storage; memory:// is one process's own), and one run writes to it at a time (on object storage runs "
            "take no lock, and another run's recovery removes work orders it takes for a dead run's)") from exc
    shard = Shard(plan["shard_id"], tuple(InputFile(**f) for f in plan["files"]))
    return store, shard, plan


def _worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """A retry cannot help when the rule packs changed under the run or the worker runs another version (Prefect's
    ``retry_condition_fn``), nor when the output refused a write (a full disk, a read-only folder: seconds later it
    still does). A missing work order is retried: a shared folder's mount may show a new file late."""
    error = getattr(state, "data", None)
    return not isinstance(error, RuleChangeError | InstallationMismatchError) and not _output_unwritable(error)


# Failures that no re-run mends until the workers and the output are set up alike: the run's error says so.
_SETUP_ERRORS = (RuleChangeError, InstallationMismatchError, WorkOrderMissingError)
# A write to the output that the machine refused: a full disk or quota, a read-only or forbidden folder. Input files are
# read by the readers, which turn their errors into rejects: an OSError out of a task is the output's.
_OUTPUT_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def _output_unwritable(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _OUTPUT_WRITE_ERRNOS


@task(name="count-lines", persist_result=False, retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=_worth_retrying)
def count_lines_task(plan_path: str, output: str, max_doc_bytes: int) -> int:
    """Pass 1 for one shard: per-source line counts into the output's state."""
    worker_cache.exit_with_parent()
    store, shard, plan = _load_plan(plan_path, output)
    _check_installation(plan)
    return count_shard(shard, store, max_doc_bytes)


@task(name="clean-shard", persist_result=False, retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=_worth_retrying)
def clean_shard_task(plan_path: str, output: str, rules: list[str] | None, max_doc_bytes: int,
                     stats_token: str = "") -> dict[str, Any]:
    """Pass 2 for one shard: clean into ``articles/`` and ``rejects/``, commit the ledger part."""
    worker_cache.exit_with_parent()
    store, shard, plan = _load_plan(plan_path, output)
    _check_installation(plan)
    ingested_at = datetime.fromisoformat(plan["ingested_at"])
    line_stats = worker_cache.run_line_stats(output, stats_token) if stats_token else store.merged_line_stats()
    ruleset = load_rules(rules)
    planned = plan.get("rules_version")
    if planned and ruleset.version != planned:  # the packs were edited while the run went on, or differ here
        raise RuleChangeError(f"this worker ({socket.gethostname()}) loads rule packs {ruleset.version}, and the run "
                              f"was planned with {planned}: the packs changed during the run, or this worker has "
                              "another boilerstrip installation or other --rules files. This shard is not cleaned, so "
                              "no run mixes two rule versions. Run again once every worker has the same packs: the "
                              "shards committed before are ingested again with the new rules")
    stats = process_shard(shard, store, ruleset, ingested_at, partition_of(ingested_at),
                          plan["fingerprints"], line_stats=line_stats, judge=default_judge(),
                          max_doc_bytes=max_doc_bytes)
    return stats.to_dict()


@flow(name="clean-shards")
def clean_shards(plan_paths: list[str], output: str, rules: list[str] | None,
                 max_doc_bytes: int, counted_again: list[str] | None = None) -> list[dict[str, Any]]:
    """Both passes over the planned shards (one work-order file each), on the caller's task runner."""
    logger = get_run_logger()
    names = [path.rsplit("/", 1)[-1].removeprefix("shard-").removesuffix(".json") for path in plan_paths]
    counts = [count_lines_task.with_options(task_run_name=f"count-lines-{name}").submit(path, output, max_doc_bytes)
              for name, path in zip(names, plan_paths, strict=True)]
    failed: list[str] = []
    setup_errors = 0  # failures no re-run mends until the workers and the output are set up alike (_SETUP_ERRORS)
    output_errors = 0  # writes to the output the machine refused (_output_unwritable)
    rules_changed = False
    counted: list[tuple[str, str]] = []  # every shard's counts exist before any shard is cleaned
    for name, path, future in zip(names, plan_paths, counts, strict=True):
        try:
            future.result()
            counted.append((name, path))
        except Exception as exc:  # this shard is not cleaned (named below); the others go on
            failed.append(f"counting lines: {type(exc).__name__}: {exc}")
            setup_errors += isinstance(exc, _SETUP_ERRORS)
            output_errors += _output_unwritable(exc)
    OutputStore.open(output).write_merged_line_stats(without_shards=set(counted_again or ()))
    stats_token = uuid.uuid4().hex  # names this merge: a worker that cached an earlier one reads it anew
    reporter = progress.current() or progress.LogReporter(logger)
    futures = [clean_shard_task.with_options(task_run_name=f"clean-shard-{name}")
               .submit(path, output, rules, max_doc_bytes, stats_token) for name, path in counted]
    results: list[dict[str, Any]] = []
    try:
        for future in as_completed(futures):
            try:
                stats = future.result()
            except Exception as exc:  # named below; the shards that succeeded are committed and kept
                failed.append(f"cleaning: {type(exc).__name__}: {exc}")
                setup_errors += isinstance(exc, _SETUP_ERRORS)
                output_errors += _output_unwritable(exc)
                rules_changed |= isinstance(exc, RuleChangeError)
                continue
            results.append(stats)
            reporter.advance(stats["n_inputs"], stats["n_bytes"])
    finally:
        worker_cache.forget()  # this process's copy; also when the run is cancelled or interrupted
    if failed:
        missing = sorted(set(names) - {r["shard_id"] for r in results})
        store = OutputStore.open(output)
        files = [f["relpath"] for name, path in zip(names, plan_paths, strict=True) if name in missing
                 for f in store.read_plan(path)["files"]]
        shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
        # With other rule packs the next run cleans every input again; otherwise it skips what this run committed.
        kept = ("The next run cleans every input again, with the rule packs it loads." if rules_changed else
                "Committed shards are kept and skipped by the next run.")
        if output_errors == len(failed):
            raise RuntimeError(f"{len(missing)} shard(s) not written: {', '.join(missing)}; the output "
                               f"{_without_userinfo(output)} refused a write (first error: {failed[0]}). Free space "
                               f"there (or fix its permissions), then run again. {kept}")
        if setup_errors == len(failed):  # every message says what to set up: nothing to report
            raise RuntimeError(f"{len(missing)} shard(s) not cleaned: {', '.join(missing)} (files: {shown}); first "
                               f"error: {failed[0]}. {kept}")
        raise RuntimeError(f"{len(missing)} shard(s) failed after retries: {', '.join(missing)} (files: {shown}); "
                           f"first error: {failed[0]}. Committed shards are kept and skipped by the next run; "
                           "if re-running the same command fails the same way, run those files on their own "
                           "(boilerstrip explain FILE shows one) and report the error.")
    return results


# Markdown's and HTML's special characters, escaped in page text shown in the run's artifact (a removed line is the
# page's text: an image or a link in it must not render as one, a pipe must not end a table cell).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def _markdown_text(text: str) -> str:
    """``text`` as literal Markdown text on one line: special characters escaped, ``<`` and ``&`` as entities,
    control characters (and line breaks) as spaces."""
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text.replace("&", "&amp;").replace("<", "&lt;"))


def _summary_markdown(summary: dict[str, Any], removed: Counter[str], lines: Counter[str]) -> str:
    out = [
        "# clean-articles run",
        "",
        f"- inputs: **{summary['inputs']}** = articles **{summary['articles']}** + rejects **{summary['rejects']}**",
        f"- files: {summary['files_seen']} seen, {summary['files_processed']} processed, "
        f"{summary['files_skipped']} already ingested; shards: {summary['shards']}",
        f"- low-confidence articles (a valve kept text cleaning would have eaten, or a cut marker held back: "
        "column `low_confidence`): "
        f"{summary['low_confidence']}",
        f"- output: {_markdown_text(summary['output'])}",
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
        *[f"| {_markdown_text(line[:120])} | {n} |" for line, n in lines.most_common(20)],
    ]
    if summary["reject_reasons"]:
        out += ["", "## Rejects", "", "| reason | inputs |", "|---|---:|",
                *[f"| `{k}` | {v} |" for k, v in sorted(summary["reject_reasons"].items())]]
    if summary["unread_fields"]:
        out += ["", "## Record fields left null (a value that is not a readable date)", "", "| field | records |",
                "|---|---:|", *[f"| `{k}` | {v} |" for k, v in sorted(summary["unread_fields"].items())]]
    return "\n".join(out)


@contextlib.contextmanager
def _workers_share_this_api(runner_name: str) -> Iterator[None]:
    """Worker processes (a process pool, a local Dask cluster) talk to this process's temporary Prefect server.
    Without a ``PREFECT_API_URL`` each started a temporary server of its own, 20-30 s before its first task on 2
    cores. Only for runs on a temporary server; the variable is restored when the work is done."""
    if runner_name == "threads" or os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value():
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    if server.server_process is None or not server.port:
        yield
        return
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        yield
    finally:
        os.environ.pop("PREFECT_API_URL", None)


def _under_output(files: list[InputFile], store: OutputStore) -> set[str]:
    """The paths of ``files`` inside the output (an input folder that holds it): not input, or its Parquet and
    state files would come back as rejects on every run. Local folders are compared by their real paths (an input
    given through a symlink to the folder that holds the output), each folder resolved once."""
    if not store.is_local:
        inside = store.fs.unstrip_protocol(store.root).rstrip("/") + "/"
        return {f.path for f in files if f.path.startswith(inside)}
    inside = os.path.realpath(store.root) + "/"
    real_folder = functools.lru_cache(maxsize=None)(os.path.realpath)
    return {f.path for f in files if "://" not in f.path and
            os.path.join(real_folder(os.path.dirname(f.path)), "").startswith(inside)}


def _without_userinfo(url: str) -> str:
    """``url`` as a manifest may show it: in each part of a chained fsspec URL (``zip://a::s3://b``), no
    ``user:password@`` before the host, and no query or fragment (they may hold tokens: ``?sig=``). A local path
    as it is."""
    parts = []
    for part in url.split("::"):
        scheme, sep, rest = part.partition("://")
        if sep:
            cut = min((at for at in (rest.find("?"), rest.find("#")) if at >= 0), default=len(rest))
            authority, slash, path = rest[:cut].partition("/")
            part = f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"
        parts.append(part)
    return "::".join(parts)


def _absolute(path: str) -> str:
    """A local path made absolute (an fsspec URL as it is; ``file://`` and ``local://`` are local paths)."""
    if path.startswith(("file://", "local://")):
        path = path.split("://", 1)[1]
    return path if "://" in path else os.path.abspath(path)


@flow(name="clean-articles")
def clean_articles(
    input: list[str] | str,
    output: str,
    rules: list[str] | None = None,
    shard_mb: Annotated[float, Field(gt=0, le=1024)] = DEFAULT_SHARD_BYTES / 2**20,
    reprocess: bool = False,
    task_runner: Literal["threads", "processes", "dask"] | None = None,
    dask_address: str | None = None,
    max_doc_mb: Annotated[float, Field(gt=0, le=1024)] = 16.0,
) -> dict[str, Any]:
    """Clean raw scraped articles under ``input`` (files, folders, globs, fsspec URLs) into ``output``.

    Only inputs not yet ingested as they are now are processed; ``reprocess`` redoes everything.
    ``task_runner``: threads, processes or dask (``dask_address`` of a scheduler, else a local cluster);
    also settable with BOILERSTRIP_TASK_RUNNER / BOILERSTRIP_DASK_ADDRESS. Default: processes for runs of
    32 MiB of input or more on a multi-core machine, else threads (``flows.runners``).
    """
    logger = get_run_logger()
    started = time.perf_counter()
    # Local paths made absolute here: tasks on Dask workers resolve a relative path against their own folder.
    output = _absolute(output)
    rules = [_absolute(path) for path in rules] if rules else rules
    ruleset = load_rules(rules)  # a broken pack fails the run here, before any work
    for warning in ruleset.costly_screens():
        logger.warning("rule packs: %s", warning)
    store = OutputStore.open(output)
    max_doc_bytes = int(max_doc_mb * 2**20)
    # What the run was asked, for its manifest: to tell runs apart, or repeat one (URLs without any user or password).
    parameters = {"input": [_without_userinfo(arg) for arg in ([input] if isinstance(input, str) else input)],
                  "rules": [_without_userinfo(arg) for arg in rules] if rules else None, "shard_mb": shard_mb,
                  "reprocess": reprocess, "task_runner": task_runner,
                  "dask_address": _without_userinfo(dask_address) if dask_address else None, "max_doc_mb": max_doc_mb}
    if not store.is_local:
        logger.warning("%s is on object storage, where runs take no lock: run one writer per output at a time "
                       "(a second run at once would take this one's unfinished parts for a dead run's)",
                       _without_userinfo(output))
    with store.lock(on_wait=logger.warning):
        recovery = store.recover()
        if recovery.orphans_removed or recovery.superseded_rows:
            logger.info("recovered output: %d orphan files removed, %d superseded rows dropped",
                        len(recovery.orphans_removed), recovery.superseded_rows)
        if recovery.quarantined:
            logger.warning("%d article or reject parts had no ledger part and no dead run's work order (their ledger "
                           "part removed by hand, or written by a worker after its run died): moved out of the "
                           "dataset to %s; their inputs are ingested again when given (docs/operations.md, 6a)",
                           len(recovery.quarantined), store.path("_state", "quarantine"))
        files = discover([input] if isinstance(input, str) else input)
        # An output inside an input folder is not input: its Parquet and state files would come back as rejects.
        own = _under_output(files, store)
        if own:
            logger.warning("%d files under the output %s left out of the inputs (the output is inside an input "
                           "folder; keep them apart)", len(own), _without_userinfo(output))
            files = [f for f in files if f.path not in own]
        todo, fingerprints, replaced_shards, moved_away, older, mates, identical = select_changed(
            files, store, ruleset.version, reprocess)
        if identical is not None:  # inputs touched but unchanged: not hashed again by the next run
            store.write_identical_inputs(identical)
        if mates:
            logger.info("%d unchanged files are cleaned again with a changed file of their shard (a shard's line "
                        "counts are counted anew as a whole)", mates)
        if older:
            logger.warning("%d ingested inputs not among this run's inputs keep rows of other rules or pipeline "
                           "versions (raw files removed, or other input roots): give them to a run to clean them "
                           "again (docs/operations.md, Upgrades)", older)
        shards = plan_shards(todo, target_bytes=int(shard_mb * 2**20), salt=f"{ruleset.version}|{PIPELINE_VERSION}")
        ingested_at = datetime.now(UTC)
        reporter = progress.current() or progress.LogReporter(logger)
        reporter.start(len(todo), sum(f.size for f in todo))
        logger.info("%d files seen, %d to process in %d shards -> %s (rules %s)",
                    len(files), len(todo), len(shards), _without_userinfo(output), ruleset.version)
        results: list[dict[str, Any]] = []
        runner_name = "none"  # no shards: nothing ran
        run_id = f"{ingested_at:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"
        if shards:
            try:
                plan_paths = [store.write_plan(run_id, s.shard_id, {
                    "shard_id": s.shard_id, "ingested_at": ingested_at.isoformat(), "rules_version": ruleset.version,
                    "pipeline_version": PIPELINE_VERSION, "files": [_file_dict(f) for f in s.files],
                    "fingerprints": {f.path: fingerprints.get(f.path, "") for f in s.files},
                }) for s in shards]
                runner_name = resolve_runner_name(task_runner, sum(f.size for f in todo), len(shards), dask_address)
                logger.info("task runner: %s", runner_name)
                runner = make_task_runner(runner_name, dask_address)
                with progress.reporting_to(reporter), _workers_share_this_api(runner_name):
                    # Old shards' counts left out of this run's merge; a shard planned again under the same id has
                    # had its counts part overwritten by this run's pass 1, so it stays in.
                    planned = {s.shard_id for s in shards}
                    results = clean_shards.with_options(task_runner=runner)(
                        plan_paths, output, rules, max_doc_bytes, [s for s in replaced_shards if s not in planned])
            except Exception as exc:
                # The output's own record of the failed run (Prefect's may be on a server long gone): what it was
                # asked, and why it failed. Its committed shards are kept; the next run skips them.
                try:
                    store.write_manifest(f"run-{run_id}.json", {
                        "status": "failed", "error": f"{type(exc).__name__}: {exc}"[:4000], "parameters": parameters,
                        "files_seen": len(files), "files_to_process": len(todo), "shards": len(shards),
                        "rules_version": ruleset.version, "pipeline_version": PIPELINE_VERSION,
                        "ingested_at": ingested_at.isoformat(), "seconds": round(time.perf_counter() - started, 3),
                        "task_runner": runner_name})
                except OSError as manifest_error:  # the same full disk, most likely: the run's error says what to do
                    logger.error("the failed run's manifest could not be written either: %s", manifest_error)
                if _output_unwritable(exc):  # writing the work orders, here in the flow's own process
                    raise RuntimeError(f"the output {_without_userinfo(output)} refused a write ({type(exc).__name__}: "
                                       f"{exc}): free space there (or fix its permissions), then run again") from exc
                raise
            store.remove_plans(run_id)
        reporter.finish()
        # After this run's shards committed: the rows of inputs found under a new path leave their old paths' files.
        retired = store.retire(moved_away)
        if moved_away:
            logger.info("%d earlier input paths replaced by the same inputs under a new path: %d rows removed",
                        len(moved_away), retired)
        # Rows of inputs this run re-ingested leave their old files. Parts without a ledger part are left where they
        # are now (on object storage, where runs take no lock, they may be another run's, in flight).
        superseded = store.recover(quarantine=False)
        if superseded.superseded_rows:
            logger.info("%d rows of inputs ingested again replaced by their new rows", superseded.superseded_rows)
    removed: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    unread: Counter[str] = Counter()
    for stats in results:
        unread.update(stats["unread_fields"])
        removed.update(stats["removed_by_rule"])
        lines.update(stats["top_removed_lines"])
        reasons.update(stats["reject_reasons"])
    sources = {source for stats in results for source in stats["sources"]}  # those under a site pack
    # Said only when the run cleaned something (cleaners.rulepack.RuleSet.idle_site_packs).
    cleaned = any(s["n_articles"] or s["n_rejects"] for s in results)
    unused = sorted(f"{pack.name} ({', '.join(pack.sites)})" for pack in ruleset.idle_site_packs(sources)) \
        if cleaned else []
    if unused:
        # Info, not a warning: a run without a site's pages is normal for a daily batch of many sites. A new pack's
        # author looks here (or in the manifest) for a typo in its `sites`.
        logger.info("site packs that applied to none of this run's sources: %s; for a pack that should have, "
                    "check its `sites` against the `source` column (`boilerstrip explain FILE` shows which packs "
                    "apply to a page)", "; ".join(unused))
    inputs = sum(s["n_inputs"] for s in results)
    articles = rows_in(store, [store.articles_path(s["partition"], s["shard_id"]) for s in results])
    rejects = rows_in(store, [store.rejects_path(s["partition"], s["shard_id"]) for s in results])
    summary = {
        "status": "ok" if inputs == articles + rejects else "accounting_failed",
        "inputs": inputs, "articles": articles, "rejects": rejects,
        "accounting_ok": inputs == articles + rejects,
        "files_seen": len(files), "files_processed": len(todo), "files_skipped": len(files) - len(todo),
        "files_with_changed_shard_mates": mates,  # unchanged, processed again with a changed file of their shard
        "shards": len(shards), "mb": sum(f.size for f in todo) / 1e6, "output": _without_userinfo(output),
        "low_confidence": sum(s["n_low_confidence"] for s in results),
        "superseded_rows": superseded.superseded_rows + retired + sum(s["n_replaced_in_place"] for s in results),
        "rules_version": ruleset.version, "pipeline_version": PIPELINE_VERSION,
        "reject_reasons": dict(reasons), "removed_by_rule": dict(removed),
        "inputs_on_other_versions": older,  # ingested earlier, not given to this run, other rules or pipeline
        "quarantined_parts": recovery.quarantined,  # parts without a ledger part, moved to _state/quarantine
        "unread_fields": dict(unread),  # record fields given with a value that is not a readable date: left null
        "site_packs_unused": unused,  # site packs none of this run's sources fell under (names and sites)
        "ingested_at": ingested_at.isoformat(), "seconds": round(time.perf_counter() - started, 3),
        "task_runner": runner_name,
        "parameters": parameters,
        "shard_files": [{"shard_id": s["shard_id"], "partition": s["partition"], "inputs": s["n_inputs"],
                         "articles": s["n_articles"], "rejects": s["n_rejects"], "seconds": round(s["seconds"], 3)}
                        for s in sorted(results, key=lambda s: s["shard_id"])],
    }
    if unread:
        logger.warning("record fields left null, their values not a readable date: %s (the first of each shard "
                       "is logged with its file and line)", ", ".join(f"{k} {v}" for k, v in sorted(unread.items())))
    manifest = store.write_manifest(f"run-{run_id}.json", summary)
    summary["manifest"] = manifest
    create_markdown_artifact(key="clean-articles-summary", markdown=_summary_markdown(summary, removed, lines),
                             description="Counts, removals per rule, most frequent removed lines")
    if not summary["accounting_ok"]:
        raise AccountingError(f"inputs ({inputs}) != articles ({articles}) + rejects ({rejects}) in "
                             f"{_without_userinfo(output)}")
    logger.info("accounting ok: inputs %d == articles %d + rejects %d (%d files already ingested)",
                inputs, articles, rejects, len(files) - len(todo))
    return summary


def _file_dict(f: InputFile) -> dict[str, Any]:
    return {"path": f.path, "relpath": f.relpath, "source": f.source, "size": f.size, "mtime_ns": f.mtime_ns}
