"""``boilerstrip``: run the clean-articles flow from a shell, on Prefect's embedded (ephemeral) default.

No server to start: Prefect's home is ``.state/prefect`` in the working folder and telemetry is off,
so nothing reaches beyond loopback. Set ``PREFECT_API_URL`` to run against a server instead.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Clean raw scraped articles into Parquet with explainable removals: the clean-articles flow, "
                       "run on Prefect's embedded default (no server) unless PREFECT_API_URL names one.")


@app.callback()
def _root() -> None:
    """Subcommands only (the app's help is the Typer's own)."""


_HEARTBEAT_SECONDS = 30  # flow heartbeats against a server; the zombie automation's window is built on it


def _prefect_environment() -> None:
    """Telemetry off and Prefect's state inside the project's ignored ``.state`` folder."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    home = Path(os.environ.get("BOILERSTRIP_STATE", ".state")).resolve() / "prefect"
    os.environ.setdefault("PREFECT_HOME", str(home))
    try:
        Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(f"cannot create Prefect's home {os.environ['PREFECT_HOME']} ({exc.strerror or exc}): run from a "
              "writable folder, or set BOILERSTRIP_STATE (or PREFECT_HOME) to a writable path")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    if os.environ.get("PREFECT_API_URL"):
        # Against a real server: the heartbeat the zombie automation expects. Set before Prefect is imported,
        # which reads its settings once (set later, runs kept Prefect's 180 s and were marked Crashed at 90 s).
        os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(_HEARTBEAT_SECONDS))


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", err=True, fg="red")
    raise typer.Exit(2)


def _check_writable(folder: str) -> None:
    """Fail now, with the reason, when a local output folder cannot be created or written (before Prefect starts:
    its start takes 10-20 s, and the error came after it, with a traceback)."""
    import tempfile

    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        _fail(f"--output {folder}: cannot write there ({exc.strerror or exc}); give a folder you can write to")


def _on_interrupt(signum: int, frame: object) -> None:
    """Ctrl-C stops a run now. Prefect's temporary server is in the terminal's process group too, so the same Ctrl-C
    stops it, and the run went on without it, then waited minutes at exit to send its events. Against a real server
    the run is stopped as on SIGTERM (Prefect marks it Crashed); on the temporary one the process ends at once.
    Either way the output is as after a crash: committed shards stay, and the next run removes the rest."""
    # os.write, not print: a signal handler may run while stderr is being written (a reentrant call raises).
    with contextlib.suppress(OSError):  # stderr's reader may be gone (`| tee log`, stopped by the same Ctrl-C)
        os.write(2, b"\ninterrupted: the shards committed so far are kept; run the same command again to do the "
                    b"rest (it first removes what this run left unfinished)\n")
    if _ON_A_SERVER:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a second Ctrl-C stops it at once
        os.kill(os.getpid(), signal.SIGTERM)
    else:
        os._exit(130)


# Whether this run is against a server of the user's (PREFECT_API_URL in the environment or a Prefect profile), not
# Prefect's temporary one: set by `run` before the flow starts (the flow sets the variable later for its worker
# processes, pointing at the temporary server).
_ON_A_SERVER = False


@app.command()
def run(
    inputs: Annotated[list[str], typer.Argument(metavar="INPUT...", help="Files, folders (searched "
                      "recursively), glob patterns or fsspec URLs (s3://bucket/raw, file:///srv/raw) of .txt, "
                      ".html/.htm and .jsonl/.jsonl.gz inputs.")],
    output: Annotated[str, typer.Option("--output", "-o", help="Output folder: articles/ and rejects/ "
                      "Parquet datasets are written under it.")],
    rules: Annotated[list[str] | None, typer.Option("--rules", help="Rule-pack file or folder to use "
                     "instead of the shipped packs (repeatable).")] = None,
    shard_mb: Annotated[float, typer.Option(help="Input MiB per task (a shard).", min=0.01,
                                                max=1024)] = 16.0,
    reprocess: Annotated[bool, typer.Option("--reprocess", help="Process every input again, even those "
                         "already ingested with the current rules (their old rows are replaced).")] = False,
    task_runner: Annotated[str | None, typer.Option(help="threads, processes or dask; or set "
                           "BOILERSTRIP_TASK_RUNNER. Default: processes from 32 MiB of input on a multi-core "
                           "machine, else threads.")] = None,
    dask_address: Annotated[str | None, typer.Option(help="Dask scheduler address (tcp://host:port) for "
                            "--task-runner dask; default: a temporary local cluster.")] = None,
    max_doc_mb: Annotated[float, typer.Option(help="Documents larger than this many MiB become rejects "
                          "(too_large) instead of being read into memory.", min=0.001, max=1024)] = 16.0,
    progress_bar: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Progress bar "
                            "(default: on when the output is a terminal, else periodic log lines).")] = None,
) -> None:
    """Clean raw scraped articles into Parquet (the clean-articles flow)."""
    _prefect_environment()
    from cleaners.readers import InputError, discover
    from cleaners.rulepack import RulePackError, load_rules

    try:
        load_rules(rules)
        files = discover(inputs)
        # The runner named by the flag or the environment, checked before Prefect starts (its size rule aside: a
        # scheduler's address alone means dask). flows.runners imports Prefect: only when a runner is named.
        chosen = None
        if task_runner or dask_address or os.environ.get("BOILERSTRIP_TASK_RUNNER") or \
                os.environ.get("BOILERSTRIP_DASK_ADDRESS"):
            from flows.runners import resolve_runner_name

            try:
                chosen = resolve_runner_name(task_runner, 0, 1, dask_address)
            except ValueError as exc:
                raise InputError(str(exc)) from exc
        if dask_address and chosen != "dask":
            raise InputError(f"--dask-address is for the dask task runner, and this run uses {chosen}: leave one out")
    except (InputError, RulePackError) as exc:
        _fail(str(exc))
    if not files:
        _fail(f"no input files found in {', '.join(inputs)}")
    if "://" not in output and os.path.exists(output) and not os.path.isdir(output):
        _fail(f"--output {output}: a file, not a folder; give a folder (it is created when missing)")
    if output.startswith(("file://", "local://")):  # a local path written as a URL: the run and DuckDB take the path
        output = output.split("://", 1)[1]
    if "://" not in output:
        _check_writable(output)
    else:
        import fsspec

        try:
            fsspec.core.url_to_fs(output)
        except (ValueError, ImportError, OSError) as exc:
            _fail(f"--output {output}: {exc} (install the fsspec package of its protocol: s3fs for s3://, gcsfs for "
                  "gs://, adlfs for az://)")
    use_bar = sys.stderr.isatty() if progress_bar is None else progress_bar
    if use_bar:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")

    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from flows import progress
    from flows.clean import clean_articles

    global _ON_A_SERVER
    _ON_A_SERVER = bool(PREFECT_API_URL.value())  # from the environment or the active Prefect profile
    if not _ON_A_SERVER and chosen == "dask" and (dask_address or os.environ.get("BOILERSTRIP_DASK_ADDRESS")):
        typer.secho("warning: the Dask cluster's workers report their task runs to a temporary Prefect server of "
                    "their own: run a Prefect server and give the run and the workers its PREFECT_API_URL to see them "
                    "(README, Scale-out; docs/operations.md, the server)", err=True, fg="yellow")
    # Against a real server a killed run must not stay Running: heartbeats plus the zombie automation. A server named
    # in the environment got its heartbeat setting before Prefect loaded (_prefect_environment); one named only in a
    # Prefect profile gets it here, for this run.
    heartbeat = PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() or (_HEARTBEAT_SECONDS if _ON_A_SERVER else None)
    if _ON_A_SERVER:
        from flows.zombies import ensure_zombie_automation

        try:
            ensure_zombie_automation(int(heartbeat))
        except Exception as exc:  # the run itself does not depend on it
            typer.secho(f"warning: could not create the zombie-run automation: {exc}", err=True, fg="yellow")

    reporter: progress.Reporter | None = progress.RichReporter() if use_bar else None
    params = {"input": inputs, "output": output, "rules": rules, "shard_mb": shard_mb, "reprocess": reprocess,
              "task_runner": task_runner, "dask_address": dask_address, "max_doc_mb": max_doc_mb}
    previous = signal.signal(signal.SIGINT, _on_interrupt)
    try:
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: heartbeat}), \
                (progress.reporting_to(reporter) if reporter is not None else contextlib.nullcontext()):
            summary = clean_articles(**params)
    except Exception as exc:  # the flow already logged the traceback; the shell gets one line
        _fail(f"the run failed: {exc}")
    finally:
        signal.signal(signal.SIGINT, previous)
    out = output.rstrip("/")
    query = f"SELECT source, title, region, len(text) AS chars FROM read_parquet('{out}/articles/**/*.parquet')"
    replaced = summary["superseded_rows"]
    typer.echo(
        f"\n{summary['files_seen']} files seen, {summary['files_skipped']} already ingested"
        + (f", {summary['files_with_changed_shard_mates']} unchanged cleaned again with a changed file of their shard"
           if summary["files_with_changed_shard_mates"] else "") + "; "
        f"{summary['inputs']} inputs -> {summary['articles']} articles + {summary['rejects']} rejects"
        + (f"; {replaced} earlier rows of these inputs replaced" if replaced else "") + "\n"
        f"articles: {out}/articles\nrejects:  {out}/rejects\nmanifest: {summary['manifest']}\n\nQuery with DuckDB:\n"
        f"  duckdb -c \"{query}\"    # the duckdb CLI, if installed\n"
        f"  {sys.executable} -c \"import duckdb; duckdb.sql(\\\"{query}\\\").show()\""
    )


@app.command()
def explain(
    file: Annotated[str, typer.Argument(help="A .txt, .html or .jsonl(.gz) input file.")],
    record_id: Annotated[str | None, typer.Option("--id", help="For JSONL: the record id to show "
                         "(default: the first record).")] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="An output folder whose learned "
                      "per-source line counts should be used, as in a run.")] = None,
    source: Annotated[str | None, typer.Option(help="Override the source (site) the rules are chosen by.")] = None,
    rules: Annotated[list[str] | None, typer.Option("--rules", help="Rule-pack file or folder to use instead of "
                                                     "the shipped packs (repeatable; to add a pack to them: "
                                                     "--rules cleaners/rules --rules my-site.toml).")] = None,
    width: Annotated[int, typer.Option(help="Characters of each line to show.")] = 100,
) -> None:
    """Show a document line by line: what is kept, what is removed, by which rule and why."""
    from rich.console import Console
    from rich.text import Text

    from cleaners.document import clean_document
    from cleaners.explain import explain_lines
    from cleaners.linemodel import default_judge
    from cleaners.readers import InputError, discover, host_folder_of, read_file
    from cleaners.rulepack import RulePackError, load_rules
    from cleaners.store import OutputStore
    from cleaners.types import RawDocument

    try:
        ruleset = load_rules(rules)
        found = discover([file])
    except (InputError, RulePackError, ValueError) as exc:
        _fail(str(exc))
    for warning in ruleset.costly_screens():
        typer.secho(f"warning: {warning}", err=True, fg="yellow")
    if len(found) != 1:
        names = ", ".join(f.relpath for f in found[:3]) + (", ..." if len(found) > 3 else "")
        _fail(f"{file}: explain shows one file; this is {len(found)} files ({names}): give one of them"
              if found else f"{file}: no input file in it")
    [input_file] = found
    if output:
        store = OutputStore.open(output)
        if not store.fs.exists(store.path("_state")):
            _fail(f"--output {output}: not an output folder of a run (no _state in it); give the folder a run "
                  "wrote to, or leave --output out")
    doc = None
    row_id = record_id  # the record's id in the output's rows
    for item in read_file(input_file):
        if record_id is None or item.input_id == record_id:
            doc = item
            break
        # A record without an id is known by its path and line, relative to the run's input root ("feeds/feed.jsonl:3"
        # in the rows), and here relative to the file's own folder ("feed.jsonl:3").
        if item.line_no is not None and item.input_id == f"{input_file.relpath}:{item.line_no}" \
                and record_id.endswith("/" + item.input_id):
            doc = item
            break
    if doc is None:
        _fail(f"{file}: no record with id {record_id!r}")
    if not isinstance(doc, RawDocument):
        _fail(f"{file}: this input is a reject ({doc.reason_code}): {doc.reason}")
    chosen_source = source or doc.source
    if source is None and output and doc.source == input_file.source:
        # A source from the file's folders depends on the input root a run was given: the output's rows say which.
        # (A JSONL record's declared source or URL host does not: it stands.)
        # A JSONL record by its id first (a record without one is known by its root-relative path and line).
        named = (input_file.kind == "jsonl" and store.sources_of(input_file.path, row_id or doc.input_id)) or \
            store.sources_of(input_file.path)
        if len(named) == 1:
            [chosen_source] = named
    if source is None and chosen_source == "unknown":
        # A file given on its own: the folder above it named like a host, as a run over its input root finds it.
        chosen_source = host_folder_of(input_file.path) or chosen_source
    stats = store.line_stats({chosen_source}) if output else None
    result = clean_document(doc.text, ruleset, source=chosen_source, known_title=doc.title,
                            title_declared=not doc.title_from_page,
                            declared_metadata={"author": doc.author} if doc.author else None, line_stats=stats,
                            judge=default_judge())
    console = Console(highlight=False, soft_wrap=not sys.stdout.isatty())  # piped: one line per line, for grep
    # The page's own strings (id, source, title, values) as Text, never as Rich markup: "[/]" in a title crashed
    # explain, "[link=...]" in a source was taken as a link; Text also drops terminal control codes.
    header = Text(_printable(doc.input_id), style="bold")
    header.append(_printable(f"  source={chosen_source}  title={result.title!r}  kept_ratio={result.kept_ratio:.2f}"
                             f"  low_confidence={result.low_confidence}  removed={len(result.removed)} lines"))
    console.print(header)
    applied = [f"{pack.name}@{pack.version}" for pack in ruleset.packs if pack.applies_to(chosen_source)]
    console.print(Text(_printable(f"rule packs for source {chosen_source!r}: {', '.join(applied) or 'none'}"
                                  + (" (no site pack lists this source)" if all(not p.sites for p in ruleset.packs
                                                                               if p.applies_to(chosen_source))
                                     else ""))))
    if result.metadata:
        console.print(Text(_printable(f"metadata: {result.metadata}")))
    for line in explain_lines(doc.text, result):
        shown = _printable(line.text if len(line.text) <= width else line.text[: width - 1] + "…")
        if line.kept:
            console.print(Text(f"{line.line_no:5d}   {shown}"))
            if line.note:
                console.print(Text(f"        ({line.note})", style="yellow"))
        else:
            console.print(Text(f"{line.line_no:5d} - {shown}", style="red"))
            console.print(Text(_printable(f"        [{line.rule}] {line.reason}"), style="dim"))


def _printable(text: str) -> str:
    """``text`` with control characters written as escapes ("\\x1b"): a page's escape codes must not clear or
    recolour the terminal, or plant links in it."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


@app.command("check-rules")
def check_rules(
    rules: Annotated[list[str] | None, typer.Option("--rules", help="Rule-pack file or folder (repeatable; default: "
                                                     "the shipped packs).")] = None,
) -> None:
    """Load rule packs as a run would and check every rule against its examples; list each pack and its sites.
    Exit code 2, with the file and rule named, when a pack is broken."""
    from cleaners.rulepack import RulePackError, load_rules

    try:
        ruleset = load_rules(rules)
    except RulePackError as exc:
        _fail(str(exc))
    for pack in ruleset.packs:
        examples = sum(len(rule.examples_drop) + len(rule.examples_keep) for rule in pack.rules)
        where = f"sites {', '.join(pack.sites)}" if pack.sites else "every source"
        typer.echo(f"ok  {pack.name}@{pack.version}  {len(pack.rules)} rules, {examples} examples pass  ({where}; "
                   f"{pack.path})")
    for warning in ruleset.costly_screens():  # loads and works, but slowly: said, not refused
        typer.secho(f"warning: {warning}", err=True, fg="yellow")
    typer.echo(f"rules_version {ruleset.version}")


@app.command()
def forget(
    files: Annotated[list[str], typer.Argument(metavar="INPUT_FILE...", help="Input files whose rows to remove, "
                     "as the runs read them (a path, or the input_file column's value).")],
    output: Annotated[str, typer.Option("--output", "-o", help="The output folder to remove them from.")],
    record_ids: Annotated[list[str] | None, typer.Option("--id", help="Only the rows of these input ids "
                          "(repeatable; one INPUT_FILE): a record of a JSONL file, say a retracted article.")] = None,
) -> None:
    """Remove an input file's rows (or some of its records') from an output: articles, rejects and ledger. For an
    article retracted or taken down, or a file ingested by mistake. A file all of whose rows go leaves the ledger,
    so a later run given it ingests it again; a run that ingests the file again (changed, --reprocess, new rules)
    brings forgotten records back: remove them from the raw file too."""
    from cleaners.readers import os_name, printable_name
    from cleaners.store import OutputStore

    if record_ids and len(files) != 1:
        _fail("--id names records of one input file: give exactly one INPUT_FILE with it")
    store = OutputStore.open(output)
    known = set(store.current_entries())
    wanted = {path if "://" in path or path in known else printable_name(os.path.abspath(os_name(path))):
              set(record_ids) if record_ids else None for path in files}
    with store.lock(on_wait=lambda message: typer.echo(message, err=True)):
        removed, unknown = store.forget(wanted)
    if unknown:
        _fail(f"not in the ledger of {output}: {', '.join(unknown)} (the ledger names files by absolute path or URL: "
              f"SELECT DISTINCT input_file FROM read_parquet('{output}/_state/ledger/**/*.parquet'))"
              + (f"; the others' {removed} rows were removed" if removed else ""))
    typer.echo(f"removed {removed} article and reject rows of {len(wanted)} input files from {output}")


@app.command("warm-up")
def warm_up() -> None:
    """Compile the cleaner's numba kernels once (or load them from numba's cache): the first run after
    installing otherwise spends ~35 s doing it."""
    from cleaners.batch import warm_up as compile_kernels

    typer.echo(f"kernels ready in {compile_kernels():.1f} s")


def main() -> None:
    # `kill -USR1 PID` prints every thread's stack to stderr: where a run that seems stuck is waiting.
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    app()


if __name__ == "__main__":
    main()
