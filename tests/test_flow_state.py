"""Per-process state of the flow's tasks: what is cached, and when it is read anew."""

from __future__ import annotations

from pathlib import Path

import pytest

from cleaners.boilerplate import LineCounter
from cleaners.store import OutputStore
from flows import worker_cache


def _write_counts(output: Path, docs: list[tuple[str, str]]) -> None:
    store = OutputStore.open(str(output))
    counter = LineCounter()
    counter.add_many(docs)
    store.write_line_counts("00000000000000a1", counter.to_table())
    store.write_merged_line_stats()


def test_merged_line_counts_are_read_once_per_run_token(tmp_path: Path) -> None:
    template = "Home | News | Sport\nShare this article\n"
    _write_counts(tmp_path, [("a.example", template + f"Story {i}.") for i in range(6)])
    first = worker_cache.run_line_stats(str(tmp_path), "run-1")
    assert worker_cache.run_line_stats(str(tmp_path), "run-1") is first  # the same run: not read again
    assert first.source_docs == {"a.example": 6}
    _write_counts(tmp_path, [("a.example", template + f"Story {i}.") for i in range(9)])
    second = worker_cache.run_line_stats(str(tmp_path), "run-2")  # the next run's merge is read anew
    assert second is not first and second.source_docs == {"a.example": 9}
    assert worker_cache.held() == [(str(tmp_path), "run-2")]  # one run's counts held at a time


def test_default_runner_is_threads_for_small_runs_and_processes_for_large(monkeypatch) -> None:
    from flows.runners import PROCESSES_FROM_BYTES, resolve_runner_name

    monkeypatch.delenv("BOILERSTRIP_TASK_RUNNER", raising=False)
    monkeypatch.setattr("flows.runners.usable_cpus", lambda: 2)
    assert resolve_runner_name(None, PROCESSES_FROM_BYTES - 1) == "threads"
    assert resolve_runner_name(None, PROCESSES_FROM_BYTES) == "processes"
    assert resolve_runner_name("dask", PROCESSES_FROM_BYTES) == "dask"  # an explicit choice wins
    monkeypatch.setenv("BOILERSTRIP_TASK_RUNNER", "threads")
    assert resolve_runner_name(None, 10 * PROCESSES_FROM_BYTES) == "threads"
    monkeypatch.delenv("BOILERSTRIP_TASK_RUNNER")
    assert resolve_runner_name(None, 10 * PROCESSES_FROM_BYTES, shards=1) == "threads"  # one shard: no pool
    monkeypatch.setattr("flows.runners.usable_cpus", lambda: 1)
    assert resolve_runner_name(None, 10 * PROCESSES_FROM_BYTES) == "threads"  # one core: no pool
    # A scheduler's address means dask (it was ignored: the run went to threads, the cluster idle).
    assert resolve_runner_name(None, 0, dask_address="tcp://127.0.0.1:8786") == "dask"
    monkeypatch.setenv("BOILERSTRIP_DASK_ADDRESS", "tcp://127.0.0.1:8786")
    assert resolve_runner_name(None, 0) == "dask"
    assert resolve_runner_name("threads", 0) == "threads"  # an explicit choice still wins
    # The run's own address wins over the environment's runner (a deployment's default).
    monkeypatch.setenv("BOILERSTRIP_TASK_RUNNER", "processes")
    assert resolve_runner_name(None, 0, dask_address="tcp://127.0.0.1:8786") == "dask"
    monkeypatch.setenv("BOILERSTRIP_TASK_RUNNER", "dsak")
    with pytest.raises(ValueError, match=r"\$BOILERSTRIP_TASK_RUNNER 'dsak': unknown task runner"):
        resolve_runner_name(None, 0)
    with pytest.raises(ValueError, match="--task-runner 'thread': unknown task runner"):
        resolve_runner_name("thread", 0)


def test_a_file_that_could_not_be_read_is_tried_again_on_the_next_run(tmp_path: Path, monkeypatch) -> None:
    """A read error (permissions, a network file system) is a reject, and the ledger commits the file without a
    content hash, so the next run reads it again and its row replaces the reject (no duplicate, nothing lost)."""
    import errno
    from datetime import UTC, datetime

    import pyarrow.dataset as ds

    import cleaners.readers as readers
    from cleaners.ingest import select_changed
    from cleaners.readers import discover
    from cleaners.rulepack import load_rules
    from cleaners.shard import plan_shards, process_shard
    from cleaners.store import partition_of

    (tmp_path / "in" / "site.example").mkdir(parents=True)
    (tmp_path / "in" / "site.example" / "a.txt").write_text(
        "A headline\n\nThe body of the article is here, long enough to be an article paragraph.\n")
    rules = load_rules()
    store = OutputStore.open(str(tmp_path / "out"))
    readable = readers.open_input

    def failing(path: str):
        raise OSError(errno.EIO, "Input/output error")

    counts = []
    for opener in (failing, readable, readable):
        monkeypatch.setattr(readers, "open_input", opener)
        monkeypatch.setattr("cleaners.ingest.open_input", opener)
        todo, fingerprints, *_ = select_changed(discover([str(tmp_path / "in")]), store, rules.version, False)
        now = datetime.now(UTC)
        for shard in plan_shards(todo, salt=rules.version):
            process_shard(shard, store, rules, now, partition_of(now), fingerprints)
        store.recover()  # what the next run does first: rows of a file ingested again are superseded
        articles = ds.dataset(str(tmp_path / "out" / "articles"), partitioning="hive").to_table().num_rows
        rejects = ds.dataset(str(tmp_path / "out" / "rejects"), partitioning="hive").to_table().num_rows
        counts.append((len(todo), articles, rejects))
    assert counts[0] == (1, 0, 1)  # unreadable: a reject
    assert counts[1] == (1, 1, 0)  # tried again: the article, and the reject is gone
    assert counts[2][0] == 0  # then current: not read again


def test_retrying_an_unreadable_file_leaves_its_shard_mates_alone(tmp_path: Path, monkeypatch) -> None:
    """Nothing of an unreadable file was counted, so retrying it (every run, until it reads) neither ingests the
    other files of its shard again (new ingested_at every day) nor drops that shard's line counts."""
    import errno
    from datetime import UTC, datetime

    import cleaners.readers as readers
    from cleaners.ingest import select_changed
    from cleaners.readers import discover
    from cleaners.rulepack import load_rules
    from cleaners.shard import count_shard, plan_shards, process_shard
    from cleaners.store import partition_of

    folder = tmp_path / "in" / "site.example"
    folder.mkdir(parents=True)
    for name in ("a", "b", "c"):
        (folder / f"{name}.txt").write_text(f"Headline {name}\n\nThe body of article {name} is here, long enough.\n")
    readable = readers.open_input

    def failing_for_a(path: str):
        if path.endswith("/a.txt"):
            raise OSError(errno.EACCES, "Permission denied")
        return readable(path)

    monkeypatch.setattr(readers, "open_input", failing_for_a)
    monkeypatch.setattr("cleaners.ingest.open_input", failing_for_a)
    rules = load_rules()
    store = OutputStore.open(str(tmp_path / "out"))
    selected = []
    for _ in range(2):
        selection = select_changed(discover([str(tmp_path / "in")]), store, rules.version, False)
        selected.append((sorted(f.relpath for f in selection.todo), selection.replaced_shards))
        now = datetime.now(UTC)
        for shard in plan_shards(selection.todo, salt=str(now)):
            count_shard(shard, store)
            process_shard(shard, store, rules, now, partition_of(now), selection.fingerprints)
        store.recover()
    assert selected[0][0] == ["site.example/a.txt", "site.example/b.txt", "site.example/c.txt"]
    assert selected[1] == (["site.example/a.txt"], [])  # only the unreadable file, and no counts replaced
    assert store.line_stats().source_docs["site.example"] == 2  # b and c, counted once


def test_the_same_files_under_another_path_are_not_ingested_twice(tmp_path: Path) -> None:
    """A copied or moved input tree (same paths below the root, same bytes) is what was ingested already: a run
    over it adds no rows with a doc_id already written. A file changed in the copy is a new input; in a tree that
    was moved (the old paths gone), its new version replaces the old path's rows."""
    import shutil

    import pyarrow.dataset as ds

    from cleaners.rulepack import load_rules

    for name in ("a", "b"):
        (tmp_path / "in" / "site.example").mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / "site.example" / f"{name}.txt").write_text(
            f"Headline {name}\n\nThe body of article {name} is here, long enough to be an article paragraph.\n")
    rules = load_rules()
    store = OutputStore.open(str(tmp_path / "out"))

    def run(*roots: str) -> list[str]:
        return sorted(f.relpath for f in _ingest_as_a_run_does([tmp_path / root for root in roots], store, rules).todo)

    def doc_ids() -> list[str]:
        return ds.dataset(str(tmp_path / "out" / "articles"), partitioning="hive").to_table()["doc_id"].to_pylist()

    assert run("in") == ["site.example/a.txt", "site.example/b.txt"]
    shutil.copytree(tmp_path / "in", tmp_path / "moved")
    assert run("moved") == []  # the same inputs under another path
    (tmp_path / "moved" / "site.example" / "b.txt").write_text("Headline b\n\nA corrected body of article b.\n")
    assert run("moved") == ["site.example/b.txt"]  # changed: a new version
    shutil.copytree(tmp_path / "in", tmp_path / "copy2")
    (tmp_path / "copy2" / "site.example" / "c.txt").write_text("Headline c\n\nAnother article, c, here.\n")
    shutil.copytree(tmp_path / "copy2", tmp_path / "copy3")
    assert run("copy2", "copy3") == ["site.example/c.txt"]  # two copies in one run: once
    assert len(doc_ids()) == 4  # a, b, c and b's new version (both trees still exist: both rows stay)


def test_a_changed_file_of_a_moved_tree_replaces_its_old_path_and_dated_roots_are_left_alone(tmp_path: Path) -> None:
    """A tree moved away (old paths gone; its unchanged files, identical under the new root, are the evidence): a
    changed file's new version replaces the old path's rows, so no doc_id repeats. Dated roots whose raw files
    were deleted after ingestion hold different articles under the same names: nothing is replaced."""
    import shutil

    import pyarrow.dataset as ds

    from cleaners.rulepack import load_rules

    rules = load_rules()

    def run(store: OutputStore, *roots: Path, reprocess: bool = False) -> list[str]:
        return sorted(f.relpath for f in _ingest_as_a_run_does(list(roots), store, rules, reprocess=reprocess).todo)

    def rows(store: OutputStore) -> list[tuple[str, str]]:
        table = ds.dataset(store.path("articles"), partitioning="hive").to_table()
        return sorted(zip(table["input_id"].to_pylist(), [p.split("/")[-3] for p in table["input_file"].to_pylist()],
                          strict=True))

    def write(root: Path, name: str, body: str) -> None:
        (root / "site.example").mkdir(parents=True, exist_ok=True)
        (root / "site.example" / name).write_text(f"Headline {name}\n\n{body}, long enough to be an article.\n")

    moving = OutputStore.open(str(tmp_path / "out1"))
    for name in ("a.txt", "b.txt"):
        write(tmp_path / "in", name, f"The body of article {name}")
    assert run(moving, tmp_path / "in") == ["site.example/a.txt", "site.example/b.txt"]
    shutil.move(tmp_path / "in", tmp_path / "moved")
    write(tmp_path / "moved", "b.txt", "A corrected body of article b")
    assert run(moving, tmp_path / "moved") == ["site.example/b.txt"]
    assert rows(moving) == [("site.example/a.txt", "in"), ("site.example/b.txt", "moved")]
    assert run(moving, tmp_path / "moved", reprocess=True) == ["site.example/a.txt", "site.example/b.txt"]
    assert rows(moving) == [("site.example/a.txt", "moved"), ("site.example/b.txt", "moved")]

    dated = OutputStore.open(str(tmp_path / "out2"))
    write(tmp_path / "2026-11-25", "feed.txt", "Monday's article")
    assert run(dated, tmp_path / "2026-11-25") == ["site.example/feed.txt"]
    shutil.rmtree(tmp_path / "2026-11-25")
    write(tmp_path / "2026-11-26", "feed.txt", "Tuesday's article")
    assert run(dated, tmp_path / "2026-11-26") == ["site.example/feed.txt"]
    assert rows(dated) == [("site.example/feed.txt", "2026-11-25"), ("site.example/feed.txt", "2026-11-26")]


def test_dated_roots_with_one_identical_file_keep_the_rows_of_the_deleted_days(tmp_path: Path) -> None:
    """Dated roots that reuse file names, given one a day, with one file identical from day to day (a static page,
    an unchanged feed) look like a moved tree once an old day's folder is deleted. A file of the old day is replaced
    only by a new version of itself (most of its text in it): another day's articles under its name leave its rows,
    and the appended feed of a tree really moved still replaces its old path."""
    import json
    import shutil

    import pyarrow.dataset as ds

    from cleaners.rulepack import load_rules

    rules = load_rules()

    def run(store: OutputStore, root: Path) -> None:
        _ingest_as_a_run_does([root], store, rules)

    def ids(store: OutputStore) -> list[str]:
        return sorted(ds.dataset(store.path("articles"), partitioning="hive").to_table()["input_id"].to_pylist())

    texts = {
        "the bridge": "The council voted on Tuesday to rebuild the old bridge, closed for two years after the flood.",
        "the library": "Volunteers reopened the library's reading room after a month of repairs to its leaking roof.",
        "the newsroom": "Our newsroom has covered the valley since 1921; write to the editors with tips and letters.",
        "the harbour": "Fishing boats stayed in the harbour as a storm warning held for the third day running.",
        "the parking fees": "Shop owners asked the mayor to scrap the new parking fees, saying trade fell by a fifth.",
    }

    def article(topic: str) -> str:
        return texts[topic]

    def day(root: Path, records: list[tuple[str, str]]) -> None:
        root.mkdir(parents=True)
        (root / "feed.jsonl").write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in records))
        (root / "static.jsonl").write_text(json.dumps({"id": "about", "text": article("the newsroom")}) + "\n")

    dated = OutputStore.open(str(tmp_path / "out"))
    day(tmp_path / "26", [("a1", article("the bridge")), ("a2", article("the library"))])
    run(dated, tmp_path / "26")
    shutil.rmtree(tmp_path / "26")  # raw retention
    day(tmp_path / "27", [("b1", article("the harbour")), ("b2", article("the parking fees"))])
    run(dated, tmp_path / "27")
    assert ids(dated) == ["a1", "a2", "about", "b1", "b2"]  # a1 and a2 went before (the old day was "moved")

    moving = OutputStore.open(str(tmp_path / "out2"))
    day(tmp_path / "in", [("a1", article("the bridge")), ("a2", article("the library"))])
    run(moving, tmp_path / "in")
    shutil.move(tmp_path / "in", tmp_path / "moved")
    with open(tmp_path / "moved" / "feed.jsonl", "a") as feed:
        feed.write(json.dumps({"id": "a3", "text": article("the harbour")}) + "\n")
    run(moving, tmp_path / "moved")
    assert ids(moving) == ["a1", "a2", "a3", "about"]  # no id twice: the old feed's rows were replaced
    # A tree moved with its feed pruned to one record, and that one rewritten: the record's own id is left, so the file
    # is a version of the old one, but a1's text is another (as ids restarting at 1 every day name other articles):
    # the old a1 keeps its row beside the new one (one doc_id twice, as when two feeds reuse an id), and a2, which
    # the new version does not hold, keeps its row. Nothing that no other row holds is lost.
    pruned = OutputStore.open(str(tmp_path / "out3"))
    day(tmp_path / "in3", [("a1", article("the bridge")), ("a2", article("the library"))])
    run(pruned, tmp_path / "in3")
    shutil.move(tmp_path / "in3", tmp_path / "moved3")
    (tmp_path / "moved3" / "feed.jsonl").write_text(
        json.dumps({"id": "a1", "text": "Correction: the council voted on Wednesday, not Tuesday."}) + "\n")
    run(pruned, tmp_path / "moved3")
    assert ids(pruned) == ["a1", "a1", "a2", "about"]


def _distinct_texts(count: int) -> list[str]:
    """``count`` texts of natural English, no two alike: the standard library's docstrings (40 words or more),
    without near-copies of one another (a method documented twice in other words)."""
    import importlib
    import inspect

    from cleaners.store import SKETCH_SIZE, _resemblance, _shingles

    def _sketch(text: str) -> tuple[int, ...]:
        return tuple(sorted(_shingles([text], 1))[:SKETCH_SIZE])

    kept: list[str] = []
    holding: dict[int, list[int]] = {}
    for name in ("collections", "itertools", "functools", "os", "re", "json", "argparse", "email.message",
                 "http.client", "decimal", "datetime", "logging", "pathlib", "subprocess", "unittest", "inspect",
                 "tarfile", "zipfile", "textwrap", "string", "calendar", "difflib", "shutil", "threading", "socket",
                 "sqlite3", "csv", "configparser", "heapq", "fractions", "statistics", "random", "urllib.request",
                 "pickle", "enum", "dataclasses", "contextlib", "ipaddress", "mailbox", "smtplib", "ftplib", "imaplib",
                 "optparse", "pprint", "locale", "gettext", "codecs"):
        module = importlib.import_module(name)
        for _, member in inspect.getmembers(module):
            for item in [member, *(value for _, value in inspect.getmembers(member) if callable(value))] \
                    if inspect.isclass(member) else [member]:
                doc = inspect.getdoc(item) if callable(item) else None
                if not doc or len(doc.split()) < 40:
                    continue
                sketch = _sketch(doc)
                near = {index for value in sketch for index in holding.get(value, ())}
                if any(_resemblance(sketch, _sketch(kept[index])) >= 0.2 for index in near):
                    continue
                for value in sketch:
                    holding.setdefault(value, []).append(len(kept))
                kept.append(doc)
                if len(kept) == count:
                    return kept
    return kept


def test_a_big_rolling_feed_keeps_every_record_the_new_version_does_not_hold() -> None:
    """The records of an old feed that its new version holds again are replaced, the others stay, in a feed of
    tens of thousands of words: judged per record (its own id; or, without one, a sketch of its 3-grams against the
    new records'), not by a sample of the 3-grams of the whole file, which called records of a 44,000-word feed
    held when a few of their sampled 3-grams were anywhere in the new one."""
    from cleaners.store import _rows_replaced

    texts = _distinct_texts(420)
    assert len(texts) == 420 and sum(len(text.split()) for text in texts[:370]) > 30_000
    old_texts, new_texts = texts[:370], texts[130:]
    for own_ids in (False, True):
        def ids(offset: int, records: list[str], own_ids: bool = own_ids) -> list[tuple[str, str, None]]:
            return [(f"story-{offset + n}" if own_ids else f"feeds/feed.jsonl:{n + 1}", text, None)
                    for n, text in enumerate(records)]

        replaced = _rows_replaced(ids(0, old_texts), ids(130, new_texts), "/26/feeds/feed.jsonl",
                                  "/27/feeds/feed.jsonl")
        held_again = {input_id for input_id, _, _ in ids(0, old_texts)[130:]}
        assert replaced == held_again, (own_ids, len(replaced - held_again), len(held_again - replaced))


def test_distinct_items_sharing_a_tail_are_not_one_record() -> None:
    """Two short items of a feed without ids that end in the same sign-off are two records (the old one keeps its row);
    an article re-cleaned with its last short line gone, and one with other spacing and case, are the same records."""
    from cleaners.store import _rows_replaced

    tail = (" Subscribe to our newsletter for daily updates from the valley, follow us on social media for more local "
            "news, and send your tips and letters to the editors at the Gazette office on Mill Street.")
    article = ("The library reopens its reading room next week after the roof was mended over the winter, the head "
               "librarian said on Tuesday. Volunteers moved twelve thousand books to the school gym in October and "
               "will carry them back over the weekend. The children's corner gets new shelves, paid for by a bake "
               "sale that raised more than four thousand pounds. Opening hours stay as they were, with late evenings "
               "on Thursdays.\nPhotos: the Gazette.")
    old = [("f.jsonl:1", "The council approved the new budget for road repairs on Monday evening." + tail, None),
           ("f.jsonl:2", article, None), ("f.jsonl:3", "Market day moves to Friday.\nStalls open at 8.", None)]
    new = [("f.jsonl:1", "Fishing boats stayed in the harbour for a third day as the storm warning held." + tail, None),
           ("f.jsonl:2", article.rsplit("\n", 1)[0], None),
           ("f.jsonl:3", "market day moves to  Friday. Stalls open at 8.", None)]
    assert _rows_replaced(old, new, "/26/f.jsonl", "/27/f.jsonl") == {"f.jsonl:2", "f.jsonl:3"}


def test_a_new_version_replaces_only_records_it_holds_again() -> None:
    """Items ending in the same 40-word footer (its 3-grams in every record are no evidence) are told apart by their
    own words; ids restarting at 1 every day name other articles (their rows stay: one doc_id twice, as when two
    feeds reuse an id); a reject goes for a reject of the same reason and size, wherever its line moved."""
    from cleaners.store import _rows_replaced

    texts = _distinct_texts(10)
    footer = (" About the author: Sam Reed has covered the valley for the Gazette since 2009 and writes the weekly "
              "column on local history. Sign up for our newsletter to get every story in your inbox, and send tips "
              "and letters to the editors at the office on Mill Street.")
    short = [" ".join(text.split()[:12]) for text in texts]  # short items: the footer is most of each one

    def rows(items: list[str], first_line: int = 1) -> list[tuple[str, str, None]]:
        return [(f"feed.jsonl:{first_line + n}", text + footer, None) for n, text in enumerate(items)]

    assert _rows_replaced(rows(short[0:4]), rows(short[2:6]), "/26/feed.jsonl", "/27/feed.jsonl") == {
        "feed.jsonl:3", "feed.jsonl:4"}
    day1 = [(str(n + 1), text, None) for n, text in enumerate(texts[0:3])]
    day2 = [(str(n + 1), text, None) for n, text in enumerate(texts[3:6])]
    assert _rows_replaced(day1, day2, "/26/feed.jsonl", "/27/feed.jsonl") == set()
    corrected = [("1", texts[0].replace(".", ";", 1) + " Correction: an earlier version misspelled a name.", None)]
    assert _rows_replaced(day1, corrected, "/26/feed.jsonl", "/27/feed.jsonl") == {"1"}
    # Rejected records with their own ids go by id (the same size is not the same record), also when now an article.
    missing = "missing_text|25|a record with neither `text` nor `html`"
    assert _rows_replaced([("a1", None, missing)], [("b9", None, missing)], "/26/f.jsonl", "/27/f.jsonl") == set()
    assert _rows_replaced([("a1", None, missing)], [("a1", texts[0], None)], "/26/f.jsonl", "/27/f.jsonl") == {"a1"}
    bad = "malformed_record|9|line 3 is not valid JSON: Expecting value"
    old = [("feed.jsonl:1", texts[0], None), ("feed.jsonl:2", texts[1], None), ("feed.jsonl:3", None, bad)]
    new = [("feed.jsonl:1", None, bad), ("feed.jsonl:2", texts[1], None), ("feed.jsonl:3", None, "empty|0|no text")]
    assert _rows_replaced(old, new, "/26/feed.jsonl", "/27/feed.jsonl") == {"feed.jsonl:2", "feed.jsonl:3"}
    # Two bad lines of one reason and size: which is which is unknown, so neither goes.
    twice = [*new, ("feed.jsonl:4", None, bad)]
    assert _rows_replaced([*old, ("feed.jsonl:4", None, bad)], twice, "/26/feed.jsonl", "/27/feed.jsonl") == {
        "feed.jsonl:2"}


def test_a_renamed_file_replaces_its_old_name_instead_of_repeating_its_rows(tmp_path: Path) -> None:
    """A file renamed between runs (a log rotated to a dated name, a page renamed by hand): the same bytes under a
    new name, the old name gone. It is ingested under its new name and the old name's rows go, so its records are
    not there twice (with one doc_id, when they carry their own ids); a copy whose original is still there is
    another input, and both stay."""
    import json
    import shutil

    import pyarrow.dataset as ds

    from cleaners.rulepack import load_rules

    rules = load_rules()
    root = tmp_path / "in" / "site.example"
    root.mkdir(parents=True)
    (root / "wire.jsonl").write_text("".join(json.dumps({"id": f"w{n}", "text": f"Headline {n}\n\nThe body of "
                                                         f"wire story number {n}, long enough to be an article."})
                                             + "\n" for n in range(3)))
    (root / "a.txt").write_text("Headline a\n\nThe body of the article a, long enough to be an article.\n")
    store = OutputStore.open(str(tmp_path / "out"))

    def rows() -> list[tuple[str, str]]:
        table = ds.dataset(store.path("articles"), partitioning="hive").to_table()
        return sorted(zip(table["input_id"].to_pylist(), [p.rsplit("/", 1)[-1] for p in
                                                          table["input_file"].to_pylist()], strict=True))

    _ingest_as_a_run_does([tmp_path / "in"], store, rules)
    shutil.move(root / "wire.jsonl", root / "wire-2026-11-26.jsonl")
    shutil.move(root / "a.txt", root / "a-renamed.txt")
    _ingest_as_a_run_does([tmp_path / "in"], store, rules)
    assert rows() == [("site.example/a-renamed.txt", "a-renamed.txt"), ("w0", "wire-2026-11-26.jsonl"),
                      ("w1", "wire-2026-11-26.jsonl"), ("w2", "wire-2026-11-26.jsonl")]
    assert sorted(path.rsplit("/", 1)[-1] for path in store.current_entries()) == ["a-renamed.txt",
                                                                                   "wire-2026-11-26.jsonl"]
    assert _ingest_as_a_run_does([tmp_path / "in"], store, rules).todo == []  # and the next run has nothing to do
    shutil.copy(root / "a-renamed.txt", root / "a-copy.txt")  # a copy beside its original: another input
    _ingest_as_a_run_does([tmp_path / "in"], store, rules)
    assert [input_id for input_id, _ in rows()] == ["site.example/a-copy.txt", "site.example/a-renamed.txt",
                                                    "w0", "w1", "w2"]

    # A feed without ids and with a bad line, renamed: its rows and rejects all go with the old name (its rows' ids
    # are its path and line), and the ledger forgets the old name.
    (root / "plain.jsonl").write_text(json.dumps({"text": "Headline p\n\nThe body of the plain story, long enough "
                                                          "to be an article."}) + "\n" + "not json\n")
    _ingest_as_a_run_does([tmp_path / "in"], store, rules)
    shutil.move(root / "plain.jsonl", root / "plain-2026-11-26.jsonl")
    _ingest_as_a_run_does([tmp_path / "in"], store, rules)
    rejects = ds.dataset(store.path("rejects"), partitioning="hive").to_table()
    assert rejects["input_id"].to_pylist() == ["site.example/plain-2026-11-26.jsonl:2"]
    assert "plain-2026-11-26.jsonl" in [path.rsplit("/", 1)[-1] for path in store.current_entries()]
    assert "plain.jsonl" not in [path.rsplit("/", 1)[-1] for path in store.current_entries()]
    # A file of rejects only, renamed: its rejects' ids hold its path, yet the same bytes are its new version.
    (root / "bad.jsonl").write_text("not json\nnor this\n")
    _ingest_as_a_run_does([tmp_path / "in"], store, rules)
    shutil.move(root / "bad.jsonl", root / "bad-2026-11-26.jsonl")
    _ingest_as_a_run_does([tmp_path / "in"], store, rules)
    rejects = ds.dataset(store.path("rejects"), partitioning="hive").to_table()
    assert sorted(rejects["input_id"].to_pylist()) == ["site.example/bad-2026-11-26.jsonl:1",
                                                       "site.example/bad-2026-11-26.jsonl:2",
                                                       "site.example/plain-2026-11-26.jsonl:2"]


def test_a_link_ingested_under_its_own_name_leaves_once_its_target_is_read(tmp_path: Path) -> None:
    """``latest.txt`` was read under its own name while its target was outside the inputs (or before links to a file
    the run reads were left out); once the target is among the inputs the link is not read, and its rows go: the
    target's rows are the article's."""
    import pyarrow.dataset as ds

    from cleaners.rulepack import load_rules

    rules = load_rules()
    store = OutputStore.open(str(tmp_path / "out"))
    site, outside = tmp_path / "in" / "a.com", tmp_path / "outside"
    site.mkdir(parents=True)
    outside.mkdir()
    (outside / "26.txt").write_text("Headline\n\nThe council voted to rebuild the old bridge after the flood.\n")
    (site / "latest.txt").symlink_to(outside / "26.txt")
    _ingest_as_a_run_does([tmp_path / "in"], store, rules)
    (outside / "26.txt").rename(site / "2026-11-26.txt")
    (site / "latest.txt").unlink()
    (site / "latest.txt").symlink_to(site / "2026-11-26.txt")
    selection = _ingest_as_a_run_does([tmp_path / "in"], store, rules)
    assert selection.moved_away == {str(site / "latest.txt"): str(site / "2026-11-26.txt")}
    table = ds.dataset(store.path("articles"), partitioning="hive").to_table()
    assert table["input_id"].to_pylist() == ["a.com/2026-11-26.txt"]

    # The same, with the input root reached through a symlinked folder (/data -> /mnt/disk/data).
    store = OutputStore.open(str(tmp_path / "out2"))
    (tmp_path / "alias").symlink_to(tmp_path / "in", target_is_directory=True)
    (site / "latest.txt").unlink()
    (outside / "27.txt").write_text("Headline\n\nFishing boats stayed in the harbour as the storm warning held.\n")
    (site / "latest.txt").symlink_to(outside / "27.txt")
    (site / "2026-11-26.txt").unlink()
    _ingest_as_a_run_does([tmp_path / "alias"], store, rules)
    (outside / "27.txt").rename(site / "2026-11-27.txt")
    (site / "latest.txt").unlink()
    (site / "latest.txt").symlink_to(site / "2026-11-27.txt")
    selection = _ingest_as_a_run_does([tmp_path / "alias"], store, rules)
    alias = tmp_path / "alias" / "a.com"
    assert selection.moved_away == {str(alias / "latest.txt"): str(alias / "2026-11-27.txt")}
    table = ds.dataset(store.path("articles"), partitioning="hive").to_table()
    assert table["input_id"].to_pylist() == ["a.com/2026-11-27.txt"]

    # And with the target moved into another folder of the inputs (the link's folder holds nothing else).
    store = OutputStore.open(str(tmp_path / "out3"))
    for name in ("2026-11-27.txt", "latest.txt"):
        (site / name).unlink()
    (outside / "28.txt").write_text("Headline\n\nThe library reopened its reading room after the roof repairs.\n")
    (site / "latest.txt").symlink_to(outside / "28.txt")
    _ingest_as_a_run_does([tmp_path / "in"], store, rules)
    (tmp_path / "in" / "b.com").mkdir()
    (outside / "28.txt").rename(tmp_path / "in" / "b.com" / "28.txt")
    (site / "latest.txt").unlink()
    (site / "latest.txt").symlink_to(tmp_path / "in" / "b.com" / "28.txt")
    _ingest_as_a_run_does([tmp_path / "in"], store, rules)
    table = ds.dataset(store.path("articles"), partitioning="hive").to_table()
    assert table["input_id"].to_pylist() == ["b.com/28.txt"]


def test_identical_files_of_dated_roots_are_not_renames(tmp_path: Path) -> None:
    """Dated roots given one a day and deleted after ingestion: day 2 has, in another folder or under another
    name, a file with day 1's bytes. Not a rename (only a file of the same folder is): each day keeps its rows."""
    import shutil

    import pyarrow.dataset as ds

    from cleaners.rulepack import load_rules

    rules = load_rules()
    store = OutputStore.open(str(tmp_path / "out"))
    page = "Headline\n\nThe council voted to rebuild the old bridge, closed for two years after the flood.\n"
    (tmp_path / "2026-11-25" / "a.com").mkdir(parents=True)
    (tmp_path / "2026-11-25" / "a.com" / "bridge.txt").write_text(page)
    _ingest_as_a_run_does([tmp_path / "2026-11-25"], store, rules)
    shutil.rmtree(tmp_path / "2026-11-25")
    (tmp_path / "2026-11-26" / "b.org").mkdir(parents=True)
    (tmp_path / "2026-11-26" / "b.org" / "council-bridge.txt").write_text(page)
    selection = _ingest_as_a_run_does([tmp_path / "2026-11-26"], store, rules)
    assert selection.moved_away == {}
    table = ds.dataset(store.path("articles"), partitioning="hive").to_table()
    assert sorted(table["input_id"].to_pylist()) == ["a.com/bridge.txt", "b.org/council-bridge.txt"]


def test_a_feed_that_rolls_over_between_dated_roots_loses_no_record(tmp_path: Path) -> None:
    """Dated roots given one a day and deleted after ingestion, with a file identical from day to day beside a feed
    that rolls over (day 2 holds the last three of day 1's five records, and new ones): the old day looks like a moved
    tree and its feed like an earlier version of the new one. The records the new feed holds again (by their ids, or by
    their text when they have none) are replaced; the others keep their rows, and the ledger still accounts for
    every row. Before, every row of the old feed went: its other records were lost for good."""
    import json
    import shutil

    import pyarrow.dataset as ds

    from cleaners.rulepack import load_rules

    rules = load_rules()
    stories = ["The council voted on Tuesday to rebuild the old bridge, closed for two years after the flood.",
               "Volunteers reopened the library's reading room after a month of repairs to its leaking roof.",
               "Fishing boats stayed in the harbour as a storm warning held for the third day running.",
               "Shop owners asked the mayor to scrap the new parking fees, saying trade fell by a fifth.",
               "A school choir from the valley won the regional contest with a song written by its pupils.",
               "Night buses will run again from March, the transport board said after a petition gathered support.",
               "The orchard cooperative expects a record apple harvest despite the late frost in April."]

    def day(root: Path, numbers: range, with_ids: bool) -> None:
        (root / "feeds").mkdir(parents=True)
        (root / "feeds" / "feed.jsonl").write_text("".join(
            json.dumps({"id": f"story-{n}", "text": stories[n - 1]} if with_ids else {"text": stories[n - 1]}) + "\n"
            for n in numbers))
        (root / "feeds" / "about.txt").write_text("About us\n\nThe newsroom has covered the valley since 1921.\n")

    for with_ids in (True, False):
        store = OutputStore.open(str(tmp_path / f"out-{with_ids}"))
        day(tmp_path / f"d1-{with_ids}", range(1, 6), with_ids)
        _ingest_as_a_run_does([tmp_path / f"d1-{with_ids}"], store, rules)
        shutil.rmtree(tmp_path / f"d1-{with_ids}")
        day(tmp_path / f"d2-{with_ids}", range(3, 8), with_ids)
        _ingest_as_a_run_does([tmp_path / f"d2-{with_ids}"], store, rules)
        table = ds.dataset(store.path("articles"), partitioning="hive").to_table()
        texts = sorted(text for text in table["text"].to_pylist() if "newsroom" not in text)
        assert texts == sorted(stories), with_ids  # each story once: 1-2 from day 1, 3-7 from day 2
        if with_ids:
            assert sorted(table["input_id"].to_pylist()) == ["feeds/about.txt"] + [f"story-{n}" for n in range(1, 8)]
        ledger = store.ledger()
        rejects = ds.dataset(store.path("rejects"), partitioning="hive").count_rows() \
            if Path(store.path("rejects")).exists() else 0
        assert sum(ledger["n_inputs"].to_pylist()) == table.num_rows + rejects
        assert sum(ledger["n_articles"].to_pylist()) == table.num_rows
        # A run that died between a data part's rewrite and its ledger part's left the old feed counting rows it no
        # longer has, and its record of what it was removing: the next recovery removes them again, and counts the
        # ledger's rows from the rows left.
        import pyarrow.compute as pc

        old_feed = next(path for path in store.current_entries() if f"d1-{with_ids}" in path and "feed" in path)
        for part in sorted(Path(store.path("_state", "ledger")).rglob("*.parquet")):
            stale = store.read_table(str(part))
            if old_feed in stale["input_file"].to_pylist():
                mine = pc.equal(stale["input_file"], old_feed)
                for column in ("n_inputs", "n_articles"):
                    stale = stale.set_column(stale.schema.get_field_index(column), stale.schema.field(column),
                                             pc.if_else(mine, pc.add(stale[column], 2), stale[column]))
                with store.writer(str(part), stale.schema) as out:
                    out.write_table(stale)
        gone = [f"story-{n}" for n in (3, 4, 5)] if with_ids else ["feeds/feed.jsonl:3", "feeds/feed.jsonl:4",
                                                                   "feeds/feed.jsonl:5"]
        Path(store.removing_path).write_text(json.dumps({"files": {old_feed: gone}}))
        assert sum(store.ledger()["n_inputs"].to_pylist()) == table.num_rows + rejects + 2
        store.recover()
        assert sum(store.ledger()["n_inputs"].to_pylist()) == table.num_rows + rejects
        assert not Path(store.removing_path).exists()



def test_a_feed_rolling_over_three_dated_roots_keeps_each_record_once(tmp_path: Path) -> None:
    """Day 1, 2 and 3 roots given one a day, each deleted after ingestion, with a static file identical every day: day
    2's copy of it was skipped as the same input (never in the ledger), yet day 3's root replaces day 2's too, so the
    records day 3 holds again are not there twice (they were, with one doc_id twice, from the third day on)."""
    import json
    import shutil

    import pyarrow.dataset as ds

    from cleaners.rulepack import load_rules

    rules = load_rules()
    stories = _distinct_texts(9)
    store = OutputStore.open(str(tmp_path / "out"))
    for day, numbers in ((1, range(0, 5)), (2, range(3, 7)), (3, range(5, 9))):
        root = tmp_path / f"d{day}"
        (root / "feeds").mkdir(parents=True)
        (root / "feeds" / "feed.jsonl").write_text("".join(json.dumps({"id": f"story-{n}", "text": stories[n]}) + "\n"
                                                           for n in numbers))
        (root / "feeds" / "about.txt").write_text("About us\n\nThe newsroom has covered the valley since 1921.\n")
        _ingest_as_a_run_does([root], store, rules)
        shutil.rmtree(root)
    table = ds.dataset(store.path("articles"), partitioning="hive").to_table()
    assert sorted(table["input_id"].to_pylist()) == ["feeds/about.txt"] + [f"story-{n}" for n in range(9)]
    assert sum(store.ledger()["n_inputs"].to_pylist()) == table.num_rows

def test_a_folder_listed_again_replaces_its_unreadable_reject(tmp_path: Path, monkeypatch) -> None:
    """A folder that could not be listed is an `unreadable` reject under the folder's path; once it can be listed,
    its files are read and that reject goes (the folder's path is never an input again, so nothing else would)."""
    import os
    from datetime import UTC, datetime

    import pyarrow.dataset as ds

    from cleaners.ingest import select_changed
    from cleaners.readers import discover
    from cleaners.rulepack import load_rules
    from cleaners.shard import plan_shards, process_shard
    from cleaners.store import partition_of

    for folder in ("open.example", "locked.example"):
        (tmp_path / "in" / folder).mkdir(parents=True)
        (tmp_path / "in" / folder / "a.txt").write_text(f"Headline\n\nThe body of the {folder} article is here.\n")
    real_scandir = os.scandir

    def locked(path=None):
        if str(path).endswith("locked.example"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    rules = load_rules()
    store = OutputStore.open(str(tmp_path / "out"))
    outcomes = []
    for scandir in (locked, real_scandir, real_scandir):
        monkeypatch.setattr(os, "scandir", scandir)
        selection = select_changed(discover([str(tmp_path / "in")]), store, rules.version, False)
        now = datetime.now(UTC)
        for shard in plan_shards(selection.todo, salt=str(now)):
            process_shard(shard, store, rules, now, partition_of(now), selection.fingerprints)
        store.retire(selection.moved_away)
        store.recover()
        articles = ds.dataset(store.path("articles"), partitioning="hive").to_table()["input_id"].to_pylist()
        rejects = ds.dataset(store.path("rejects"), partitioning="hive").to_table()["reason_code"].to_pylist() \
            if os.path.isdir(store.path("rejects")) else []
        outcomes.append((sorted(articles), rejects))
    assert outcomes[0] == (["open.example/a.txt"], ["unreadable"])
    assert outcomes[1] == outcomes[2] == (["locked.example/a.txt", "open.example/a.txt"], [])


def test_a_run_given_only_a_changed_file_keeps_its_shard_mates_counts(tmp_path: Path) -> None:
    """A run given one changed file ingests it alone: the counts of its old shard stay, since they are the only
    counts of the shard's other files (they were deleted, and those files were never counted again)."""
    from datetime import UTC, datetime

    from cleaners.boilerplate import line_keys
    from cleaners.ingest import select_changed
    from cleaners.readers import discover
    from cleaners.rulepack import load_rules
    from cleaners.shard import count_shard, plan_shards, process_shard
    from cleaners.store import partition_of

    folder = tmp_path / "in" / "site.example"
    folder.mkdir(parents=True)
    footer = "Home | News | Contact us"
    for name in ("a", "b", "c"):
        (folder / f"{name}.txt").write_text(f"Headline {name}\n\nThe body of article {name} is here.\n{footer}\n")
    rules = load_rules()
    store = OutputStore.open(str(tmp_path / "out"))

    def run(inputs: list[str]) -> list[str]:
        selection = select_changed(discover(inputs), store, rules.version, False)
        now = datetime.now(UTC)
        for shard in plan_shards(selection.todo, salt=str(now)):
            count_shard(shard, store)
            process_shard(shard, store, rules, now, partition_of(now), selection.fingerprints)
        store.recover()
        return selection.replaced_shards

    run([str(tmp_path / "in")])
    (folder / "a.txt").write_text(f"Headline a\n\nThe body of article a, corrected.\n{footer}\n")
    assert run([str(folder / "a.txt")]) == []  # its old shard is not counted anew: b and c are not in this run
    stats = store.line_stats()
    assert stats.source_docs["site.example"] == 4  # b, c, a as it was (its old shard) and a as it is
    assert stats.n_docs("site.example", line_keys([footer])[0]).tolist() == [4]
    # Given the whole tree later, nothing is left to do, and the counts of b and c are still there.
    assert run([str(tmp_path / "in")]) == [] and store.line_stats().source_docs["site.example"] == 4


def _ingest(store: OutputStore, inputs: list[str]) -> list[str]:
    """One run's selection and both passes, through the library (as the flow's tasks run them), then recovery."""
    from datetime import UTC, datetime

    from cleaners.ingest import select_changed
    from cleaners.readers import discover
    from cleaners.rulepack import load_rules
    from cleaners.shard import count_shard, plan_shards, process_shard
    from cleaners.store import partition_of

    rules = load_rules()
    selection = select_changed(discover(inputs), store, rules.version, False)
    now = datetime.now(UTC)
    for shard in plan_shards(selection.todo, salt=str(now)):
        count_shard(shard, store)
    store.write_merged_line_stats(without_shards=set(selection.replaced_shards))
    stats = store.merged_line_stats()
    for shard in plan_shards(selection.todo, salt=str(now)):
        process_shard(shard, store, rules, now, partition_of(now), selection.fingerprints, line_stats=stats)
    store.recover()
    return selection.replaced_shards


def test_a_feed_given_alone_does_not_make_its_shared_lines_template(tmp_path: Path) -> None:
    """A feed counted in its old shard and again in a new one weighs double in the totals as in the lines: a line
    on 4 of its 10 records (a byline) stays below the template share (with distinct totals it was "on 58% of 12
    documents", and went from those records)."""
    import json

    import pyarrow.dataset as ds

    folder = tmp_path / "in" / "feed.example"
    folder.mkdir(parents=True)
    byline = "By Jane Correspondent"
    records = [{"id": f"r{i}", "text": f"Headline {i}\n\n" + (f"{byline}\n" if i < 4 else "")
                + f"Record {i} reports on its own matter at some length, with details.\n"} for i in range(10)]
    (folder / "feed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "note.txt").write_text("Note\n\nA note beside the feed, in the same shard, with its own words.\n")
    store = OutputStore.open(str(tmp_path / "out"))
    _ingest(store, [str(tmp_path / "in")])
    with (folder / "feed.jsonl").open("a") as feed:
        feed.write(json.dumps({"id": "r10", "text": "Headline 10\n\nRecord 10, the newest, says more.\n"}) + "\n")
    assert _ingest(store, [str(folder / "feed.jsonl")]) == []
    rows = ds.dataset(store.path("articles"), format="parquet").to_table().to_pylist()
    assert not [r["input_id"] for r in rows for removed in r["removed"] if removed["text"] == byline]
    assert all(byline in r["text"] for r in rows if r["input_id"] in {"r0", "r1", "r2", "r3"})


def test_a_shard_left_with_only_unread_files_loses_its_counts(tmp_path: Path) -> None:
    """A shard whose counted files were all ingested again (it was left out of that run's merge) keeps a ledger
    part for a file nothing of which was read: its counts go all the same, so no later run counts those files
    twice."""
    from cleaners.boilerplate import line_keys

    folder = tmp_path / "in" / "site.example"
    folder.mkdir(parents=True)
    footer = "Home | News | Contact us"
    for name in ("a", "b", "c"):
        (folder / f"{name}.txt").write_text(f"Headline {name}\n\nThe body of article {name} is here.\n{footer}\n")
    (folder / "d.txt").symlink_to(tmp_path / "nowhere.txt")  # unreadable: in the ledger, in no counts
    store = OutputStore.open(str(tmp_path / "out"))
    _ingest(store, [str(tmp_path / "in")])
    (folder / "d.txt").unlink()  # gone: its unread row stays in the old shard's ledger part
    (folder / "a.txt").write_text(f"Headline a\n\nThe body of article a, corrected.\n{footer}\n")
    assert len(_ingest(store, [str(tmp_path / "in")])) == 1  # a, b and c again: the old shard is replaced
    (folder / "e.txt").write_text(f"Headline e\n\nThe body of article e is new.\n{footer}\n")
    _ingest(store, [str(tmp_path / "in")])
    stats = store.line_stats()
    assert stats.source_docs["site.example"] == 4 and stats.n_docs("site.example", line_keys([footer])[0])[0] == 4


def test_a_retried_shard_does_not_count_its_own_uncommitted_parts_as_replaced(tmp_path: Path, monkeypatch) -> None:
    """A clean task that wrote its parts and failed before its ledger part (the commit) is retried: the parts it
    overwrites were never committed, so they are not reported as replaced rows."""
    from datetime import UTC, datetime

    import pytest

    from cleaners.readers import discover
    from cleaners.rulepack import load_rules
    from cleaners.shard import plan_shards, process_shard
    from cleaners.store import partition_of

    folder = tmp_path / "in" / "site.example"
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text("Headline a\n\nThe body of article a is here, long enough to be kept.\n")
    store = OutputStore.open(str(tmp_path / "out"))
    [shard] = plan_shards(discover([str(tmp_path / "in")]))
    now = datetime.now(UTC)

    def failing(*args: object, **kwargs: object) -> None:
        raise OSError("transient: the ledger write failed")

    with monkeypatch.context() as patch:
        patch.setattr(OutputStore, "write_ledger", failing)
        with pytest.raises(OSError):
            process_shard(shard, store, load_rules(), now, partition_of(now), {})
    assert process_shard(shard, store, load_rules(), now, partition_of(now), {}).n_replaced_in_place == 0
    assert process_shard(shard, store, load_rules(), now, partition_of(now), {}).n_replaced_in_place == 1


def test_a_damaged_gzip_file_is_not_read_again_until_it_changes(tmp_path: Path) -> None:
    """A truncated .jsonl.gz is `corrupt` (its content, not a read error): its ledger row keeps its hash, so the next
    run skips it instead of writing new parts for the same reject every day; a whole copy in its place is read."""
    import gzip
    import json

    import pyarrow.dataset as ds

    from cleaners.ingest import select_changed
    from cleaners.readers import discover
    from cleaners.rulepack import load_rules

    folder = tmp_path / "in" / "feed.example"
    folder.mkdir(parents=True)
    whole = gzip.compress(json.dumps({"id": "1", "text": "A headline\n\nThe body of the article is here, long "
                                      "enough to be an article paragraph."}).encode() + b"\n")
    (folder / "feed.jsonl.gz").write_bytes(whole[:20])
    store = OutputStore.open(str(tmp_path / "out"))
    _ingest(store, [str(tmp_path / "in")])
    rejects = ds.dataset(str(tmp_path / "out" / "rejects"), format="parquet").to_table().to_pylist()
    assert [r["reason_code"] for r in rejects] == ["corrupt"]
    assert select_changed(discover([str(tmp_path / "in")]), store, load_rules().version, False).todo == []
    (folder / "feed.jsonl.gz").write_bytes(whole)
    _ingest(store, [str(tmp_path / "in")])
    articles = ds.dataset(str(tmp_path / "out" / "articles"), format="parquet").to_table()
    assert articles.num_rows == 1
    assert ds.dataset(str(tmp_path / "out" / "rejects"), format="parquet").to_table().num_rows == 0


def test_an_output_path_with_glob_characters_keeps_its_ledger(tmp_path: Path) -> None:
    """The ledger's parts are read file by file: a batched read expanded `[1]` as a glob and found nothing."""
    (tmp_path / "in" / "site.example").mkdir(parents=True)
    (tmp_path / "in" / "site.example" / "a.txt").write_text(
        "A headline\n\nThe body of the article is here, long enough to be an article paragraph.\n")
    store = OutputStore.open(str(tmp_path / "out[1]"))
    _ingest(store, [str(tmp_path / "in")])
    fresh = OutputStore.open(str(tmp_path / "out[1]"))
    assert list(fresh.current_entries()) == [str(tmp_path / "in" / "site.example" / "a.txt")]


def _ingest_as_a_run_does(roots: list[Path], store: OutputStore, rules, hashed: list[str] | None = None,
                          reprocess: bool = False):
    """What a run does with its inputs (flows.clean): select, record the inputs found identical, clean the rest, then
    retire the old paths its files replace and recover. ``hashed``: cleared first, to collect the paths the selection
    hashes (see ``_counting_hashes``)."""
    from datetime import UTC, datetime

    import cleaners.ingest as ingest
    from cleaners.readers import discover
    from cleaners.shard import plan_shards, process_shard
    from cleaners.store import partition_of

    if hashed is not None:
        hashed.clear()
    selection = ingest.select_changed(discover([str(root) for root in roots]), store, rules.version, reprocess)
    if selection.identical is not None:
        store.write_identical_inputs(selection.identical)
    now = datetime.now(UTC)
    for shard in plan_shards(selection.todo, salt=rules.version):
        process_shard(shard, store, rules, now, partition_of(now), selection.fingerprints)
    store.retire(selection.moved_away)  # once the shards committed
    store.recover()
    return selection


def _counting_hashes(monkeypatch) -> list[str]:
    import cleaners.ingest as ingest

    hashed: list[str] = []
    sha256_of = ingest._sha256_of
    monkeypatch.setattr(ingest, "_sha256_of", lambda path: hashed.append(path) or sha256_of(path))
    return hashed


def test_a_touched_but_unchanged_file_is_hashed_once_not_on_every_run(tmp_path: Path, monkeypatch) -> None:
    """A file whose time moved and whose bytes did not (touch, a copy without times) is not ingested again; it was
    hashed again on every later run too, serially, forever. The output remembers it: one hash, then none until
    it moves again; a changed file is still found."""
    import os

    from cleaners.rulepack import load_rules

    folder = tmp_path / "in" / "site.example"
    folder.mkdir(parents=True)
    for name in ("a.txt", "b.txt"):
        (folder / name).write_text(f"A headline {name}\n\nThe body of the article is here, long enough to be an "
                                   "article paragraph.\n")
    rules = load_rules()
    store = OutputStore.open(str(tmp_path / "out"))
    hashed = _counting_hashes(monkeypatch)

    def run() -> list[str]:
        selection = _ingest_as_a_run_does([tmp_path / "in"], store, rules, hashed)
        return sorted(f.relpath.rsplit("/", 1)[-1] for f in selection.todo)

    assert run() == ["a.txt", "b.txt"] and len(hashed) == 2
    for name in ("a.txt", "b.txt"):
        os.utime(folder / name, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    assert run() == [] and len(hashed) == 2  # touched: hashed once, found identical
    assert run() == [] and hashed == []  # and not again
    (folder / "b.txt").write_text("A changed headline\n\nThe body of the article changed, long enough to be kept.\n")
    os.utime(folder / "b.txt", ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    # Same time as remembered, another size: hashed, and ingested again (with its shard mate: cleaners.ingest).
    assert "b.txt" in run() and str(folder / "b.txt") in hashed
    assert run() == [] and hashed == []
    (tmp_path / "out" / "_state" / "identical_inputs.parquet").write_bytes(b"damaged")
    assert run() == [] and hashed == []  # nothing touched since: nothing to hash, and a damaged record is no error


def test_a_copied_input_tree_is_hashed_once_not_on_every_run(tmp_path: Path, monkeypatch) -> None:
    """The same files under a new root (a copy, a new mount) are the inputs already ingested: not ingested again,
    and not hashed again by every later run either (they are in the ledger under their first path only)."""
    import shutil

    from cleaners.rulepack import load_rules

    (tmp_path / "a" / "site.example").mkdir(parents=True)
    (tmp_path / "a" / "site.example" / "x.txt").write_text("A headline\n\nThe body of the article is here, long "
                                                          "enough to be an article paragraph.\n")
    rules = load_rules()
    store = OutputStore.open(str(tmp_path / "out"))
    hashed = _counting_hashes(monkeypatch)

    def run(*roots: str) -> int:
        return len(_ingest_as_a_run_does([tmp_path / root for root in roots], store, rules, hashed).todo)

    assert run("a") == 1
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert run("a", "b") == 0 and hashed == [str(tmp_path / "b" / "site.example" / "x.txt")]
    assert run("a", "b") == 0 and hashed == []


def test_a_new_version_is_told_from_other_articles_on_big_files_too() -> None:
    """Big files' 3-grams are sampled (the same sample on both sides): an appended or lightly edited big feed is still
    a version of the old one, another feed of the same size is not; files of rejects only compare their ids."""
    import random

    from cleaners.store import _new_version_of

    rng = random.Random(7)
    vocabulary = [f"w{i}" for i in range(5_000)]

    def feed(n: int) -> list[str]:
        return [" ".join(rng.choices(vocabulary, k=200)) for _ in range(n)]

    old = feed(500)  # 100,000 words: sampled
    edited = [text.replace(text.split()[3], "changed", 1) if i % 3 == 0 else text for i, text in enumerate(old)]
    moved, dated = ("/in/x.jsonl", "/moved/x.jsonl"), ("/26/x.jsonl", "/27/x.jsonl")
    # Records without ids ("x.jsonl:1", made from the path): judged by their text.
    assert _new_version_of((old, {"x.jsonl:1"}), (edited + feed(100), {"x.jsonl:1", "x.jsonl:2"}), *moved)
    assert not _new_version_of((old, {"x.jsonl:1"}), (feed(500), {"x.jsonl:1"}), *dated)
    # A record's own id in both: the same record (its rows would repeat a doc_id), whatever the text now.
    assert _new_version_of((old, {"a1", "a2"}), (feed(50), {"a1"}), *moved)
    assert _new_version_of(([], {"x.jsonl:1"}), ([], {"x.jsonl:1", "x.jsonl:2"}), *moved)
    assert not _new_version_of(([], {"x.jsonl:1", "x.jsonl:3"}), ([], {"x.jsonl:1"}), *moved)


def test_a_tree_reached_through_a_symlink_replaces_its_other_name(tmp_path: Path) -> None:
    """A run over a symlinked name of an input tree ingests a changed file under that name: the rows of the file's
    other name go (it is the same file), so no doc_id repeats; a run back under the first name adds nothing."""
    import os

    import pyarrow.dataset as ds

    from cleaners.rulepack import load_rules

    rules = load_rules()
    store = OutputStore.open(str(tmp_path / "out"))

    def run(*roots: Path) -> list[str]:
        return sorted(f.relpath for f in _ingest_as_a_run_does(list(roots), store, rules).todo)

    def rows() -> list[tuple[str, str]]:
        table = ds.dataset(store.path("articles"), partitioning="hive").to_table()
        return sorted(zip(table["doc_id"].to_pylist(), [p.split("/")[-3] for p in table["input_file"].to_pylist()],
                          strict=True))

    site = tmp_path / "in" / "site.example"
    site.mkdir(parents=True)
    (site / "a.txt").write_text("Headline a\n\nThe council voted on Tuesday to rebuild the bridge after the flood.\n")
    (site / "b.txt").write_text("Headline b\n\nVolunteers reopened the library's reading room after a month of work.\n")
    assert run(tmp_path / "in") == ["site.example/a.txt", "site.example/b.txt"]
    os.symlink(tmp_path / "in", tmp_path / "link")
    with open(site / "a.txt", "a") as article:
        article.write("Work starts in spring, the mayor said on Wednesday.\n")
    assert run(tmp_path / "link") == ["site.example/a.txt"]
    assert [folder for _, folder in rows()].count("link") == 1 and len({doc for doc, _ in rows()}) == len(rows()) == 2
    assert run(tmp_path / "in") == []
    assert len(rows()) == 2
    # Changed again, read under the first name: the link's row goes (it holds only a.txt: no moved-tree evidence).
    with open(site / "a.txt", "a") as article:
        article.write("The bridge reopens in the autumn.\n")
    assert run(tmp_path / "in") == ["site.example/a.txt"]
    assert len({doc for doc, _ in rows()}) == len(rows()) == 2
    # Both names given at once, after a change: one is read, the other's old row goes.
    with open(site / "a.txt", "a") as article:
        article.write("Tolls were ruled out.\n")
    assert run(tmp_path / "in", tmp_path / "link") == ["site.example/a.txt"]
    assert len({doc for doc, _ in rows()}) == len(rows()) == 2


def test_forget_removes_a_retracted_record_or_a_whole_file(tmp_path: Path) -> None:
    """`boilerstrip forget`: one record of a feed (a retracted article) leaves the articles, and its file's ledger
    entry counts one input less, so the accounting still holds and a later run does not bring it back (the file is
    unchanged); a whole file leaves the articles, the rejects and the ledger; a path the ledger does not know is
    named, exit code 2."""
    import json

    import pyarrow.dataset as ds
    from typer.testing import CliRunner

    from cleaners.rulepack import load_rules
    from flows.cli import app

    rules = load_rules()
    root = tmp_path / "in" / "site.example"
    root.mkdir(parents=True)
    (root / "wire.jsonl").write_text("".join(json.dumps({"id": f"w{n}", "text": f"Headline {n}\n\nThe body of wire "
                                                         f"story number {n}, long enough to be an article."}) + "\n"
                                             for n in range(3)) + "not json\n")
    (root / "a.txt").write_text("Headline a\n\nThe body of the article a, long enough to be an article.\n")
    store = OutputStore.open(str(tmp_path / "out"))
    _ingest_as_a_run_does([tmp_path / "in"], store, rules)

    def state() -> tuple[list[str], int, dict[str, int]]:
        articles = sorted(ds.dataset(store.path("articles"), partitioning="hive").to_table()["input_id"].to_pylist())
        rejects = ds.dataset(store.path("rejects"), partitioning="hive").count_rows() \
            if Path(store.path("rejects")).exists() else 0
        ledger = store.ledger()
        inputs = dict(zip([p.rsplit("/", 1)[-1] for p in ledger["input_file"].to_pylist()],
                          ledger["n_inputs"].to_pylist(), strict=True))
        assert sum(inputs.values()) == len(articles) + rejects  # the accounting holds
        return articles, rejects, inputs

    assert state() == (["site.example/a.txt", "w0", "w1", "w2"], 1, {"a.txt": 1, "wire.jsonl": 4})
    runner = CliRunner()
    done = runner.invoke(app, ["forget", str(root / "wire.jsonl"), "--id", "w1", "--output", str(tmp_path / "out")])
    assert done.exit_code == 0, done.output
    assert "removed 1 article and reject rows" in done.output
    assert state() == (["site.example/a.txt", "w0", "w2"], 1, {"a.txt": 1, "wire.jsonl": 3})
    assert _ingest_as_a_run_does([tmp_path / "in"], store, rules).todo == []  # unchanged: w1 stays forgotten
    # A removal a run left pending (it died) is finished first, not written over.
    Path(store.removing_path).write_text(json.dumps({"files": {str(root / "wire.jsonl"): ["w2"]}}))
    done = runner.invoke(app, ["forget", str(root / "a.txt"), str(tmp_path / "no-such.txt"), "--output",
                               str(tmp_path / "out")])
    assert done.exit_code == 2 and "no-such.txt" in done.output and "the others' 2 rows were removed" in done.output
    assert state() == (["w0"], 1, {"wire.jsonl": 2})
    assert not Path(store.removing_path).exists()
