"""Bad input: every awkward file ends as an article or a reject with a clear reason, exactly once.

The corpus is generated in a temporary folder (``tests/bad_inputs.py``). Unit tests run each case
through the readers and the cleaner without Prefect; one test runs the whole corpus through the
``clean-articles`` flow and checks the accounting, the manifest and that every input appears once.
"""

from __future__ import annotations

import contextlib
import json
import resource
import signal
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from cleaners.decode import decode_bytes
from cleaners.readers import InputFile, discover, open_input, os_name, printable_name, read_file
from cleaners.shard import clean_raw
from cleaners.types import RawDocument, Reject, RejectReason
from tests.bad_inputs import ARTICLE, RUNNING_AS_ROOT, Case, build_corpus, hidden_relpaths, write_big_article

MiB = 2**20


def _case_list() -> list[Case]:
    """The cases, for parametrization: a throwaway corpus with tiny size cases (the same cases)."""
    with tempfile.TemporaryDirectory(prefix="boilerstrip-bad-inputs-") as tmp:
        return build_corpus(Path(tmp) / "c", big_bytes=1024, long_line_bytes=1024)


CASES = _case_list()
REJECT_CODES = {str(code) for code in RejectReason}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Case]]:
    root = tmp_path_factory.mktemp("bad-inputs") / "corpus"
    return root, build_corpus(root)


@pytest.fixture(scope="module")
def discovered(corpus: tuple[Path, list[Case]]) -> dict[str, InputFile]:
    root, _ = corpus
    with deadline(30, "discovery of the corpus (with a symlink loop) did not terminate"):
        files = discover([str(root)])
    return {f.relpath: f for f in files}


@contextlib.contextmanager
def deadline(seconds: float, what: str) -> Iterator[None]:
    """Fail (instead of hanging the suite) when the block takes longer than ``seconds``."""
    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"{what}: still running after {seconds} s")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _outcome(item: RawDocument | Reject, rules) -> tuple[str, dict[str, Any]]:
    """What one reader item becomes after cleaning: ("article", row) or (reason_code, reject fields)."""
    result = clean_raw(item, rules, datetime.now(UTC)) if isinstance(item, RawDocument) else item
    if isinstance(result, Reject):
        return str(result.reason_code), {"reason_code": str(result.reason_code), "reason": result.reason,
                                          "line_no": result.line_no, "input_id": result.input_id}
    return "article", result


# -- unit level: the readers and the cleaner on each case, no Prefect -------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.test_id for c in CASES])
def test_each_bad_input_becomes_an_article_or_a_clear_reject(case: Case, discovered, rules) -> None:
    f = discovered[case.relpath]
    with deadline(20, f"reading and cleaning {case.relpath!r}"):
        items = list(read_file(f))
    if case.line_no is not None:
        items = [i for i in items if i.line_no == case.line_no]
    assert len(items) == 1, f"{case.why}: expected one item, got {items!r:.300}"
    outcome, row = _outcome(items[0], rules)
    assert outcome == case.outcome, f"{case.why}: {outcome} {row.get('reason', '')}"
    assert (row.get("input_id") or "") == case.input_id
    if outcome != "article":
        assert outcome in REJECT_CODES and len(row["reason"]) > 10, row
    if case.check is not None:
        case.check(row)


def test_every_string_of_every_item_can_be_written_as_utf8(discovered) -> None:
    """Names and fields never carry surrogates: Parquet and Prefect's JSON refuse them."""
    for f in discovered.values():
        for value in (f.path, f.relpath, f.source):
            value.encode("utf-8")
        for item in read_file(f, max_doc_bytes=MiB):
            for name in ("input_id", "source", "input_file", "text", "reason", "title", "url"):
                value = getattr(item, name, None)
                if isinstance(value, str):
                    value.encode("utf-8")


def test_hidden_files_are_not_inputs_and_discovery_is_complete(corpus, discovered) -> None:
    _, cases = corpus
    assert not set(hidden_relpaths()) & set(discovered)
    assert set(discovered) == {c.relpath for c in cases}


def test_symlink_loop_does_not_repeat_files(corpus) -> None:
    root, _ = corpus
    for arg in (str(root / "loop"), str(root / "**" / "inside.txt"), str(root / "loop" / "**" / "*.txt")):
        with deadline(20, f"discover({arg!r})"):
            files = discover([arg])
        assert [Path(f.path).name for f in files] == ["inside.txt"], (arg, [f.relpath for f in files])
        assert all("/parent/" not in f.path for f in files)


def test_oversize_file_is_rejected_without_being_read() -> None:
    """A 50 MiB article over the 16 MiB limit: rejected from its size, not read into memory."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "huge.txt"
        write_big_article(path, 50 * MiB)
        [f] = discover([str(path)])
        tracemalloc.start()
        try:
            [reject] = list(read_file(f))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert isinstance(reject, Reject) and reject.reason_code == RejectReason.TOO_LARGE
        assert reject.n_bytes == 50 * MiB and "16777216-byte document limit" in reject.reason
        assert peak < MiB, f"{peak} bytes allocated to reject a file by its size"


def test_file_that_grew_since_discovery_is_read_only_up_to_the_limit() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grew.txt"
        write_big_article(path, 8 * MiB)
        stale = InputFile(path=str(path), relpath="grew.txt", source="unknown", size=1000)  # size at discovery
        tracemalloc.start()
        try:
            [reject] = list(read_file(stale, max_doc_bytes=MiB))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert isinstance(reject, Reject) and reject.reason_code == RejectReason.TOO_LARGE
        assert peak < 3 * MiB, f"{peak} bytes allocated: the reader read more than limit + 1 byte"


def test_oversize_jsonl_record_is_skipped_without_holding_it(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    good = json.dumps({"id": "ok", "text": ARTICLE})
    with path.open("w") as handle:
        handle.write(good + "\n")
        handle.write(json.dumps({"id": "huge", "text": "word " * (2 * MiB)}) + "\n")  # ~10 MiB line
        handle.write(json.dumps({"id": "after", "text": ARTICLE}) + "\n")
    [f] = discover([str(path)])
    tracemalloc.start()
    try:
        items = list(read_file(f, max_doc_bytes=MiB))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [(type(i).__name__, i.line_no) for i in items] == [("RawDocument", 1), ("Reject", 2), ("RawDocument", 3)]
    assert items[1].reason_code == RejectReason.TOO_LARGE and items[1].input_id == "big.jsonl:2"
    huge_line = len(json.dumps({"id": "huge", "text": "word " * (2 * MiB)}).encode()) + 1
    assert items[1].n_bytes == huge_line  # the whole record, not the last piece read of it
    assert peak < 4 * MiB, f"{peak} bytes allocated for a 10 MiB line over a 1 MiB limit"


def test_five_megabyte_single_line_is_cleaned_in_seconds(tmp_path: Path, rules) -> None:
    path = tmp_path / "line.txt"
    path.write_text("A title\n\n" + ("lorem ipsum dolor sit amet " * (5 * MiB // 27 + 1))[: 5 * MiB] + "\n")
    [f] = discover([str(path)])
    started = time.perf_counter()
    with deadline(60, "cleaning a 5 MiB line"):
        [item] = list(read_file(f))
        outcome, row = _outcome(item, rules)
    elapsed = time.perf_counter() - started
    assert outcome == "article" and row["n_chars_clean"] >= 5 * MiB - 10 and row["title"] == "A title"
    assert elapsed < 15, f"{elapsed:.1f} s for one 5 MiB line"


def test_chmod_000_file_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "locked.txt"
    path.write_text(ARTICLE)
    path.chmod(0)
    try:
        if RUNNING_AS_ROOT:
            pytest.skip("running as root: chmod 000 does not stop root from reading; the FIFO and dangling-symlink "
                        "cases of the corpus cover unreadable files on every host")
        [reject] = list(read_file(discover([str(path)])[0]))
        assert isinstance(reject, Reject) and reject.reason_code == RejectReason.UNREADABLE
        assert "permission" in reject.reason.lower()
    finally:
        path.chmod(0o644)


def test_non_regular_files_raise_instead_of_blocking(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "pipe.txt")
    (tmp_path / "dir.txt").mkdir()
    for name in ("pipe.txt", "dir.txt"):
        with deadline(5, f"open_input({name})"), pytest.raises(OSError, match="not a regular file"):
            open_input(str(tmp_path / name))
    with deadline(5, "discover the FIFO through a glob"):
        [f] = discover([str(tmp_path / "*.txt")])  # the folder is not a file; the FIFO is an input
    assert f.relpath == "pipe.txt"


def test_non_utf8_file_name_round_trips(tmp_path: Path) -> None:
    import os

    raw = os.path.join(os.fsdecode(bytes(tmp_path)), os.fsdecode(b"caf\xe9.txt"))
    Path(raw).write_text(ARTICLE)
    [f] = discover([str(tmp_path)])
    assert f.relpath == "caf\U0010fee9.txt" and f.path == printable_name(raw) and os_name(f.path) == raw
    pa.array([f.path, f.relpath])  # valid text
    [doc] = list(read_file(f))
    assert isinstance(doc, RawDocument) and doc.input_file == f.path


def test_literal_file_name_with_glob_characters(tmp_path: Path) -> None:
    (tmp_path / "story [draft].txt").write_text(ARTICLE)
    [f] = discover([str(tmp_path / "story [draft].txt")])
    assert f.relpath == "story [draft].txt"


# -- decoding -------------------------------------------------------------------------------------------

FRENCH = ("Le conseil municipal a approuvé le budget mardi après un long débat sur les écoles et les routes. "
          "Le maire a précisé que les travaux débuteront à l'automne, déjà prévus.")
GERMAN = "Der Stadtrat hat am Dienstag nach einer langen Debatte über Schulen und Straßen den Haushalt beschlossen."
CZECH = ("Městská rada schválila rozpočet v úterý po dlouhé debatě o školách a silnicích. Je to důležitý krok "
         "pro naše město, řekl starosta.")
RUSSIAN = "Городской совет утвердил бюджет во вторник после долгих дебатов о школах и дорогах."
GREEK = "Το δημοτικό συμβούλιο ενέκρινε τον προϋπολογισμό την Τρίτη μετά από μακρά συζήτηση."
JAPANESE = "市議会は火曜日、学校と道路に関する長い議論の末、予算を承認した。"
ENGLISH_NAMES = ("The delegation from Zürich met Søren Kierkegaard's biographer on Monday and discussed the "
                 "archive, the funding and the exhibition planned for next spring in the old town hall.")


@pytest.mark.parametrize(
    ("text", "codec", "label"),
    [
        (FRENCH, "latin-1", "cp1252"),
        (FRENCH + " « Guillemets » — 5 € ’", "cp1252", "cp1252"),
        (GERMAN, "latin-1", "cp1252"),
        (ENGLISH_NAMES, "latin-1", "cp1252"),
        (CZECH, "cp1250", "cp1250"),
        (RUSSIAN, "cp1251", "cp1251"),
        (GREEK, "cp1253", "cp1253"),
        (JAPANESE, "shift_jis", None),
        (FRENCH, "utf-16", "utf-16"),
        (FRENCH, "utf-16-le", "utf-16-le"),
        (GERMAN, "utf-16-be", "utf-16-be"),
    ],
    ids=["fr-latin1", "fr-cp1252", "de-latin1", "en-names-latin1", "cs-cp1250", "ru-cp1251", "el-cp1253",
         "ja-shift-jis", "fr-utf16-bom", "fr-utf16le", "de-utf16be"],
)
def test_legacy_encodings_decode_to_the_original_text(text: str, codec: str, label: str | None) -> None:
    decoded = decode_bytes(text.encode(codec))
    assert decoded.text == text, (decoded.encoding, decoded.text)
    if label:
        assert decoded.encoding == label


def test_damaged_utf8_keeps_its_utf8_and_reads_stray_bytes_as_cp1252() -> None:
    data = FRENCH.encode() + b" A \x93quote\x94, a stray \xff and a cut \xc3"
    decoded = decode_bytes(data)
    assert decoded.encoding == "utf-8+cp1252"
    assert decoded.text == FRENCH + " A “quote”, a stray ÿ and a cut Ã"


def test_utf16_cut_mid_character_is_still_text() -> None:
    decoded = decode_bytes((GERMAN + " Grüße").encode("utf-16")[:-1])
    assert decoded.encoding == "utf-16" and decoded.text is not None and decoded.text.startswith(GERMAN)


def test_random_bytes_are_never_an_article() -> None:
    import random

    rng = random.Random(5)
    for size in (64, 512, 4096, 65536):
        data = bytes(rng.randrange(256) for _ in range(size))
        decoded = decode_bytes(data)
        assert decoded.text is None and decoded.failure in (RejectReason.BINARY, RejectReason.UNDECODABLE), \
            (size, decoded.encoding)


# -- the whole corpus through the flow -------------------------------------------------------------------


def _rows(out: Path, folder: str) -> list[dict[str, Any]]:
    if not (out / folder).exists():
        return []
    return ds.dataset(out / folder, format="parquet", partitioning="hive").to_table().to_pylist()


def test_whole_corpus_through_the_flow(prefect_backend, corpus, tmp_path: Path) -> None:
    from flows.clean import clean_articles

    root, cases = corpus
    out = tmp_path / "out"
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    with deadline(120, "the flow over the bad-input corpus"):
        summary = clean_articles(input=[str(root)], output=str(out))
    elapsed = time.perf_counter() - started
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before

    # Accounting, in the summary and in the manifest written with the output.
    assert summary["accounting_ok"] and summary["inputs"] == summary["articles"] + summary["rejects"]
    assert summary["inputs"] == len(cases), (summary["inputs"], len(cases))
    [manifest_path] = sorted((out / "_manifests").glob("run-*.json"))
    manifest = json.loads(manifest_path.read_text())
    assert manifest["accounting_ok"] is True
    assert (manifest["inputs"], manifest["articles"], manifest["rejects"]) == (
        summary["inputs"], summary["articles"], summary["rejects"])
    assert manifest["inputs"] == manifest["articles"] + manifest["rejects"]

    articles, rejects = _rows(out, "articles"), _rows(out, "rejects")
    assert (len(articles), len(rejects)) == (summary["articles"], summary["rejects"])
    prefix = str(root) + "/"
    assert all(r["input_file"].startswith(prefix) for r in articles + rejects)

    # Every input exactly once: files by path, JSONL records by line (rejects) or id (articles).
    def rel(row: dict[str, Any]) -> str:
        return row["input_file"][len(prefix):]
    article_keys = Counter((rel(r), r["input_id"]) for r in articles)
    reject_keys = Counter((rel(r), r["line_no"], r["input_id"]) for r in rejects)
    assert max(article_keys.values()) == 1 and max(reject_keys.values()) == 1
    by_article = {(rel(r), r["input_id"]): r for r in articles}
    by_reject = {(rel(r), r["input_id"], r["line_no"]): r for r in rejects}
    for case in cases:
        found_article = by_article.pop((case.relpath, case.input_id), None)
        found_reject = by_reject.pop((case.relpath, case.input_id, case.line_no), None)
        assert (found_article is None) != (found_reject is None), f"{case.test_id} ({case.why}): not exactly once"
        row = found_article or found_reject
        got = "article" if found_article else row["reason_code"]
        if case.outcome is not None:
            assert got == case.outcome, f"{case.test_id} ({case.why}): {got} {row.get('reason', '')}"
        if found_reject:
            assert row["reason_code"] in REJECT_CODES and len(row["reason"]) > 10
        if case.check is not None and got == case.outcome:
            case.check(row)
    assert not by_article and not by_reject, f"unexpected rows: {list(by_article)} {list(by_reject)}"

    # Text comes out with LF only and without NUL, whatever came in.
    assert all("\r" not in r["text"] and "\x00" not in r["text"] for r in articles)
    glob = f"{out}/rejects/**/*.parquet"
    [(count,)] = duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning = true) "
                            "WHERE reason_code = 'too_large'").fetchall()
    assert count == 1

    # The 50 MiB article was never held in memory: the flow added little to this process' peak RSS.
    print(f"flow over {len(cases)} inputs: {elapsed:.1f} s, peak RSS growth {rss_growth / MiB:.0f} MiB")
    assert rss_growth < 400 * MiB, f"peak RSS grew by {rss_growth / MiB:.0f} MiB"
    assert elapsed < 60, f"{elapsed:.1f} s"


def test_one_document_that_breaks_the_cleaner_is_a_reject_and_the_shard_goes_on(tmp_path, monkeypatch) -> None:
    """An error while cleaning one document (a bug) costs that document, as a `processing_error` reject naming
    the error, not its shard, whichever batches the documents fall in; a broken setup fails the shard."""
    from datetime import UTC, datetime

    import pyarrow.parquet as pq

    import cleaners.shard as shard_module
    from cleaners.readers import discover
    from cleaners.rulepack import load_rules
    from cleaners.shard import plan_shards, process_shard
    from cleaners.store import OutputStore, partition_of

    (tmp_path / "in" / "site.example").mkdir(parents=True)
    for name in ("a", "b", "boom", "c"):
        (tmp_path / "in" / "site.example" / f"{name}.txt").write_text(
            f"Headline {name}\n\nThe body of article {name} is here, long enough to be an article paragraph.\n")
    real = shard_module._clean_raw_batch

    def fragile(docs, *args):
        if any("boom" in doc.text for doc in docs):
            raise ZeroDivisionError("simulated bug")
        return real(docs, *args)

    monkeypatch.setattr(shard_module, "_clean_raw_batch", fragile)
    rules = load_rules()
    store = OutputStore.open(str(tmp_path / "out"))
    now = datetime.now(UTC)
    [shard] = plan_shards(discover([str(tmp_path / "in")]))
    stats = process_shard(shard, store, rules, now, partition_of(now), {})
    assert (stats.n_inputs, stats.n_articles, stats.n_rejects) == (4, 3, 1)
    rejects = pq.read_table(store.rejects_path(partition_of(now), shard.shard_id)).to_pylist()
    assert [(r["input_id"], r["reason_code"]) for r in rejects] == [("site.example/boom.txt", "processing_error")]
    assert "raised ZeroDivisionError: simulated bug" in rejects[0]["reason"]

    # Two such documents in one batch, or every document of it: the same rejects, whatever the batches.
    for name in ("boom2", "boom3"):
        (tmp_path / "in" / "site.example" / f"{name}.txt").write_text(f"Headline {name}\n\nboom body {name}.\n")
    [shard] = plan_shards(discover([str(tmp_path / "in")]))
    outcomes = []
    for batch_docs in (1, 2, 256):
        stats = process_shard(shard, store, rules, now, partition_of(now), {}, batch_docs=batch_docs)
        rejects = pq.read_table(store.rejects_path(partition_of(now), shard.shard_id)).to_pylist()
        outcomes.append((stats.n_articles, sorted((r["input_id"], r["reason_code"]) for r in rejects)))
    assert outcomes[0] == (3, [(f"site.example/{name}.txt", "processing_error") for name in ("boom", "boom2", "boom3")])
    assert outcomes[1] == outcomes[0] and outcomes[2] == outcomes[0]

    # A broken setup (here: a judge that cannot score) fails the shard, also when batches hold one document.
    class BrokenJudge:
        version = "broken"

        def judge(self, *args, **kwargs):
            raise ImportError("the model could not be loaded")

        def decide(self, *args):
            raise AssertionError("never reached")

    monkeypatch.setattr(shard_module, "_clean_raw_batch", real)
    with pytest.raises(ImportError, match="the model could not be loaded"):
        process_shard(shard, store, rules, now, partition_of(now), {}, judge=BrokenJudge(), batch_docs=1)
