"""Per-source line counts (learned template lines): keys, counting, merging, storage round trip."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cleaners.boilerplate import (
    LINE_COUNTS_SCHEMA,
    MAX_COUNTED_CHARS,
    LineCounter,
    LineStats,
    line_hash,
    line_keys,
)
from cleaners.rulepack import canonical_line

TEMPLATE = "Home | News | Sport\nShare this article\n"


def _counter(docs: list[tuple[str, str]]) -> LineCounter:
    counter = LineCounter()
    counter.add_many(docs)
    return counter


def test_line_keys_fold_case_and_whitespace_and_skip_blank_or_long_lines() -> None:
    lines = ["Share  THIS\u00a0article", "share this article", "", "x" * (MAX_COUNTED_CHARS + 1)]
    keys, countable = line_keys(lines)
    assert countable.tolist() == [True, True, False, False]
    assert keys[0] == keys[1] == line_hash(canonical_line("share this article"))
    assert keys[2] == keys[3] == 0


def test_counts_are_documents_per_source_and_duplicates_count_once() -> None:
    docs = [("a.example", TEMPLATE + f"Story {i} text.\nShare this article") for i in range(4)]
    docs += [("a.example", docs[0][1]), ("b.example", TEMPLATE + "Other story.")]
    table = _counter(docs).to_table()
    rows = {(r["source"], r["line"]): (r["n_docs"], r["source_docs"]) for r in table.to_pylist()}
    assert rows[("a.example", "Share this article")] == (4, 4)  # twice in a document, and a repeated document: once
    assert rows[("b.example", "Home | News | Sport")] == (1, 1)
    assert table.schema.equals(LINE_COUNTS_SCHEMA)


def test_stats_sum_shards_drop_single_documents_and_answer_per_source() -> None:
    shard1 = _counter([("a.example", TEMPLATE + f"Story {i}.") for i in range(3)]).to_table()
    shard2 = _counter([("a.example", TEMPLATE + f"Story {i}.") for i in range(3, 5)]).to_table()
    stats = LineStats.from_tables([shard1, shard2])
    assert stats.source_docs == {"a.example": 5}
    keys, _ = line_keys(["HOME | news | sport", "Story 1.", "never seen"])
    assert stats.n_docs("a.example", keys).tolist() == [5, 0, 0]  # "Story 1." is on one document: dropped
    assert stats.n_docs("b.example", keys).tolist() == [0, 0, 0]
    evidence = stats.evidence("a.example", "Share this article")
    assert evidence is not None and evidence.share == 1.0


def test_merge_and_table_round_trip_keep_the_counts() -> None:
    one = LineStats.from_tables([_counter([("a.example", TEMPLATE + f"S{i}.") for i in range(2)]).to_table()])
    two = LineStats.from_tables([_counter([("a.example", TEMPLATE), ("c.example", TEMPLATE),
                                           ("c.example", TEMPLATE + "x")]).to_table()])
    merged = LineStats.merge(one, two)
    keys, _ = line_keys(["Share this article"])
    assert merged.n_docs("a.example", keys).tolist() == [2]  # `two` saw it on one a.example document: dropped there
    assert merged.n_docs("c.example", keys).tolist() == [2]
    assert merged.source_docs == {"a.example": 3, "c.example": 2}
    again = LineStats.from_table(merged.to_table(), merged.source_docs)
    for source in ("a.example", "c.example"):
        assert np.array_equal(again.per_source[source][0], merged.per_source[source][0])
        assert np.array_equal(again.per_source[source][1], merged.per_source[source][1])


def test_tables_of_another_counts_version_are_ignored() -> None:
    table = _counter([("a.example", TEMPLATE + f"S{i}.") for i in range(3)]).to_table()
    old = table.replace_schema_metadata({**table.schema.metadata, b"boilerstrip.schema_version": b"0"})
    assert LineStats.from_tables([old]).source_docs == {}
    assert LineStats.from_tables([table, old]).source_docs == {"a.example": 3}
    assert LineStats.from_tables([pa.Table.from_pylist([], schema=LINE_COUNTS_SCHEMA)]).per_source == {}


def test_merge_is_bounded_and_undercounts_by_at_most_its_bound(monkeypatch) -> None:
    """Misra-Gries: at most cap lines a source, every count within N/(cap+1) below the true one (N: the
    source's counted pairs), in either order of the shards; lines on every document stay."""
    import cleaners.boilerplate as boilerplate

    cap = 3
    monkeypatch.setattr(boilerplate, "MAX_LINES_PER_SOURCE", cap)
    shards = [_counter([("a.example", TEMPLATE + f"Story {shard}-{i}.\nUnique {shard}-{i}") for i in range(3)])
              .to_table() for shard in range(4)]
    exact: dict[int, int] = {}
    for table in shards:
        for row in table.to_pylist():
            exact[row["line_hash"]] = exact.get(row["line_hash"], 0) + row["n_docs"]
    bound = sum(exact.values()) / (cap + 1)
    template, _ = line_keys(["Home | News | Sport", "Share this article"])
    for stats in (LineStats.from_tables(shards), LineStats.from_tables(reversed(shards))):
        keys, counts = stats.per_source["a.example"]
        assert len(keys) <= cap and set(template.tolist()) <= set(keys.tolist())
        for key, n in zip(keys.tolist(), counts.tolist(), strict=True):
            assert exact[key] - bound <= n <= exact[key]
        assert stats.source_docs == {"a.example": 12}


def test_a_line_on_every_document_survives_many_reductions(monkeypatch) -> None:
    """One document per shard, each with its own lines and one shared line whose key loses every tie: the
    shared line keeps a count within the bound through every reduction of the running sum."""
    import cleaners.boilerplate as boilerplate

    cap = 40
    monkeypatch.setattr(boilerplate, "MAX_LINES_PER_SOURCE", cap)
    shared = 10**9  # larger than every other key
    shards = [_shard_table({"a.example": {shard * 100 + k: 1 for k in range(10)} | {shared: 1}}, docs=1)
              for shard in range(30)]
    stats = LineStats.from_tables(shards)
    assert 30 - 30 * 11 / (cap + 1) <= stats.n_docs("a.example", np.array([shared]))[0] <= 30
    assert len(stats.per_source["a.example"][0]) <= cap


def _shard_table(source_rows: dict[str, dict[int, int]], docs: int) -> pa.Table:
    rows = [{"source": source, "line_hash": key, "line": "", "n_docs": n, "source_docs": docs, "kind": "line"}
            for source, counts in source_rows.items() for key, n in counts.items()]
    return pa.Table.from_pylist(rows, schema=LINE_COUNTS_SCHEMA)


def test_merge_holds_at_most_two_caps_and_one_shard_per_source(monkeypatch) -> None:
    """The merge's memory bound: a source never holds more than its capped sum, plus the pieces not yet
    folded (fewer than one cap), plus one shard's rows; however many shards there are."""
    import cleaners.boilerplate as boilerplate

    cap = 50
    monkeypatch.setattr(boilerplate, "MAX_LINES_PER_SOURCE", cap)
    held: list[int] = []
    add = boilerplate._SourceSum.add

    def watched(self: boilerplate._SourceSum, keys: np.ndarray, counts: np.ndarray) -> None:
        add(self, keys, counts)
        held.append(len(self.keys) + self.pending)

    monkeypatch.setattr(boilerplate._SourceSum, "add", watched)
    rng = np.random.default_rng(7)
    shards = [_shard_table({s: {int(k): int(rng.integers(1, 4)) for k in rng.integers(0, 10**6, cap)}
                            | {-1: 5, -2: 5} for s in ("a.example", "b.example")}, docs=5) for _ in range(40)]
    stats = LineStats.from_tables(shards)
    assert held and max(held) <= 2 * cap + 2
    for source in ("a.example", "b.example"):
        keys, counts = stats.per_source[source]
        assert len(keys) <= cap and np.all(np.diff(keys) > 0)
        total = sum(int(n) for table in shards for row in table.to_pylist() if row["source"] == source
                    for n in [row["n_docs"]])
        assert 200 - total / (cap + 1) <= dict(zip(keys.tolist(), counts.tolist(), strict=True))[-1] <= 200
    assert stats.source_docs == {"a.example": 200, "b.example": 200}


def test_merge_is_the_exact_sum_while_sources_stay_under_the_cap() -> None:
    rng = np.random.default_rng(11)
    tables, expected = [], {}
    for _ in range(12):
        rows = {s: {int(k): int(rng.integers(1, 5)) for k in rng.integers(0, 400, 60)}
                for s in rng.choice(["a.example", "b.example", "c.example"], 2, replace=False).tolist()}
        for source, counts in rows.items():
            for key, n in counts.items():
                expected.setdefault(source, {}).setdefault(key, 0)
                expected[source][key] += n
        tables.append(_shard_table(rows, docs=9))
    stats = LineStats.from_tables(tables)
    for source, counts in expected.items():
        frequent = {k: n for k, n in sorted(counts.items()) if n >= 2}
        keys, summed = stats.per_source[source]
        assert dict(zip(keys.tolist(), summed.tolist(), strict=True)) == frequent



def test_counter_is_bounded_per_source_and_keeps_the_most_frequent_lines(monkeypatch) -> None:
    import cleaners.boilerplate as boilerplate

    monkeypatch.setattr(boilerplate, "MAX_LINES_PER_SOURCE", 3)
    counter = LineCounter()
    for batch in range(6):  # 20 new distinct lines per batch: past four caps, so the counter reduces itself
        counter.add_many([("a.example", TEMPLATE + "\n".join(f"Unique {batch}-{i}-{j}" for j in range(10)))
                          for i in range(2)] + [("b.example", f"Only line of b\nStory {batch}")])
    rows = [row for row in counter.to_table().to_pylist() if row["kind"] == "line"]
    a_rows = {row["line"]: (row["n_docs"], row["source_docs"]) for row in rows if row["source"] == "a.example"}
    assert len(a_rows) <= 3  # the cap
    pairs = 6 * 2 * 12  # (document, line) pairs counted for a.example
    for line in ("Home | News | Sport", "Share this article"):
        assert 12 - pairs / (4 * 3 + 1) <= a_rows[line][0] <= 12 and a_rows[line][1] == 12
    b_rows = [(row["line"], row["n_docs"]) for row in rows if row["source"] == "b.example"]
    assert ("Only line of b", 6) in b_rows and len(b_rows) == 3
    assert [row["source"] for row in rows] == sorted(row["source"] for row in rows)
    for source in ("a.example", "b.example"):
        keys = [row["line_hash"] for row in rows if row["source"] == source]
        assert keys == sorted(keys)
    # The samples of reduced-away lines went with them: what is left is what the counts still hold.
    held = {key for summed in counter._sums.values() for key in summed.held_keys().tolist()}
    assert set(counter.samples.keys.tolist()) == held


def test_counts_tables_of_another_version_are_not_used() -> None:
    from cleaners.boilerplate import LINE_COUNTS_VERSION

    table = _counter([("a.example", TEMPLATE + f"Story {i}.") for i in range(3)]).to_table()
    assert LineStats.from_tables([table]).source_docs == {"a.example": 3}
    metadata = {**table.schema.metadata, b"boilerstrip.schema_version": b"1"}
    assert LINE_COUNTS_VERSION != "1"
    assert LineStats.from_tables([table.replace_schema_metadata(metadata)]).source_docs == {}


def test_counter_stats_without_samples_equal_the_stats_of_its_table(monkeypatch) -> None:
    import cleaners.boilerplate as boilerplate

    monkeypatch.setattr(boilerplate, "MAX_LINES_PER_SOURCE", 3)  # the cap and the reductions too
    docs = [("a.example", TEMPLATE + "\n".join(f"Unique {i}-{j}" for j in range(10))) for i in range(12)]
    docs += [("b.example", f"Only line of b\nStory {i}") for i in range(3)] + [("c.example", "x" * 500)]
    with_samples, without = LineCounter(), LineCounter(keep_samples=False)
    for start in range(0, len(docs), 4):
        with_samples.add_many(docs[start:start + 4])
        without.add_many(docs[start:start + 4])
    expected = LineStats.from_tables([with_samples.to_table()])
    got = without.to_stats()
    # c.example has no countable line, but its document is counted (a document row).
    assert not without.samples and got.source_docs == expected.source_docs == {"a.example": 12, "b.example": 3,
                                                                                "c.example": 1}
    assert got.per_source.keys() == expected.per_source.keys() == {"a.example", "b.example"}
    for source, (keys, counts) in expected.per_source.items():
        assert got.per_source[source][0].tolist() == keys.tolist()
        assert got.per_source[source][1].tolist() == counts.tolist()
    assert with_samples.to_stats().per_source.keys() == expected.per_source.keys()
    assert got.tops.keys() == expected.tops.keys() == {"a.example", "b.example"}
    for source, (keys, counts) in expected.tops.items():
        assert got.tops[source][0].tolist() == keys.tolist()
        assert got.tops[source][1].tolist() == counts.tolist()


def test_counter_stats_keep_copies_whatever_the_least_count(monkeypatch) -> None:
    """A document counted twice (after MAX_TRACKED_DOCUMENTS others) is a copy at any ``min_n_docs``, as the merge of
    the counter's table has it."""
    import cleaners.boilerplate as boilerplate

    monkeypatch.setattr(boilerplate, "MAX_TRACKED_DOCUMENTS", 1)
    counter = LineCounter()
    for text in ["Cape Argus\nStory one.", "Cape Argus\nStory two.", "Cape Argus\nStory one."]:
        counter.add_many([("a.example", text)])
    for least in (1, 2, 3, 4):
        got, expected = counter.to_stats(least), LineStats.from_tables([counter.to_table()], min_n_docs=least)
        assert got.source_docs == expected.source_docs == {"a.example": 3}
        assert {k: v[1].tolist() for k, v in got.copies.items()} == \
            {k: v[1].tolist() for k, v in expected.copies.items()} == {"a.example": [2]}


def test_top_counts_are_the_first_lines_above_the_first_line_of_prose() -> None:
    """A `top` row counts the documents on which a line stands among their first TOP_LINES countable lines, above
    their first line of prose: a masthead at the top of every page, not a "Most read" list under a short article."""
    from cleaners.boilerplate import TOP_LINES, TOP_PROSE_BYTES

    prose = "A paragraph of the story, " * 6
    assert len(prose) > TOP_PROSE_BYTES
    fillers = [f"Menu item {j}" for j in range(TOP_LINES)]
    docs = [("a.example", "\n".join(["Skip to content", "", "Gazette", f"Headline {i}", prose, "Most read",
                                      "Headline 0", *fillers])) for i in range(4)]
    docs += [("a.example", "\n".join([*fillers, "Gazette", f"{prose}{k}"])) for k in range(2)]  # Gazette below them
    stats = LineStats.from_tables([_counter(docs).to_table()])

    def at_top(line: str) -> int:
        return int(stats.top_docs("a.example", line_keys([line])[0])[0])

    assert (at_top("Skip to content"), at_top("Gazette"), at_top("Headline 0"), at_top("Most read")) == (4, 4, 0, 0)
    assert at_top("Menu item 0") == at_top(f"Menu item {TOP_LINES - 1}") == 2  # the last two pages' tops
    assert stats.n_docs("a.example", line_keys(["Gazette", "Headline 0"])[0]).tolist() == [6, 4]
    merged = LineStats.merge(stats, stats)
    assert merged.top_docs("a.example", line_keys(["Gazette"])[0]).tolist() == [8]
    assert LineStats.from_tables([merged.to_table()]).top_docs("a.example", line_keys(["Gazette"])[0]).tolist() == [8]


def test_counts_of_version_3_are_read_without_tops() -> None:
    """A version 3 table (no `top` rows) still gives its lines and copies; where lines stand is unknown (empty)."""
    table = _counter([("a.example", TEMPLATE + f"Story {i}.") for i in range(3)]).to_table()
    old = table.filter(pc.not_equal(table["kind"], "top"))
    old = old.replace_schema_metadata({**table.schema.metadata, b"boilerstrip.schema_version": b"3"})
    stats = LineStats.from_tables([old])
    assert stats.source_docs == {"a.example": 3} and not stats.tops
    assert stats.n_docs("a.example", line_keys(["Share this article"])[0]).tolist() == [3]
    assert LineStats.from_tables([table]).top_docs("a.example", line_keys(["Share this article"])[0]).tolist() == [3]


def test_clean_batch_cleans_with_the_keys_pass_one_computed(rules) -> None:
    """clean_batch hands pass 1's keys to pass 2; cleaning with them equals keying the texts again, and keys
    for another number of texts are refused."""
    import pytest

    from cleaners.batch import BatchItem, clean_batch
    from cleaners.boilerplate import KeyedTexts
    from cleaners.document import DocumentInput, clean_documents

    texts = [TEMPLATE + f"Story {i} of the day, in a sentence long enough to stay.\r\nMore." for i in range(6)]
    texts.append(texts[0])  # a duplicate: counted once, cleaned like the others
    items = [BatchItem("a.example", text) for text in texts]
    counter = LineCounter(keep_samples=False)
    counter.add_many([(item.source, item.text) for item in items])
    stats = counter.to_stats()
    assert stats.source_docs == {"a.example": 6}
    inputs = [DocumentInput(text, "a.example") for text in texts]
    expected = clean_documents(inputs, rules, line_stats=stats)
    assert clean_documents(inputs, rules, line_stats=stats, line_keys=KeyedTexts.of(texts)) == expected
    assert clean_batch(items, rules) == expected
    assert any(row.rule == "learned.source-boilerplate" for row in expected[1].removed)
    with pytest.raises(ValueError, match="7 documents"):
        clean_documents(inputs, rules, line_stats=stats, line_keys=KeyedTexts.of(texts[:3]))


def test_a_sources_template_is_learned_from_its_recent_history(tmp_path) -> None:
    """Counts are summed newest shard first until a source has HISTORY_DOCS_PER_SOURCE documents: after a redesign
    the new footer becomes template once the recent pages carry it, whatever the source's older history says."""
    from datetime import UTC, datetime

    from cleaners.boilerplate import HISTORY_DOCS_PER_SOURCE
    from cleaners.store import OutputStore

    store = OutputStore.open(str(tmp_path / "out"))
    per_shard = HISTORY_DOCS_PER_SOURCE // 2 + 50
    old, new = "Old footer | About us", "New footer | Contact"
    shards = [("0000000000000001", 1, old, 3 * per_shard), ("0000000000000002", 2, new, per_shard),
              ("0000000000000003", 3, new, per_shard)]
    for shard, month, footer, n in shards:
        store.write_line_counts(shard, _counter([("s.example", f"Story {shard} {i}\n{footer}\n") for i in range(n)])
                                .to_table())
        store.write_ledger(f"ingest_date=2026-0{month}-01", shard, [{
            "input_file": f"/in/{shard}.jsonl", "size": 1, "mtime_ns": month, "content_sha256": "x", "shard_id": shard,
            "partition": f"ingest_date=2026-0{month}-01", "rules_version": "r", "pipeline_version": "p",
            "n_inputs": n, "n_articles": n, "n_rejects": 0, "ingested_at": datetime(2026, 3, 1, tzinfo=UTC)}])
    stats = store.line_stats()
    assert stats.source_docs == {"s.example": 2 * per_shard}  # the two newest shards: the window is full
    assert stats.n_docs("s.example", line_keys([new, old])[0]).tolist() == [2 * per_shard, 0]
    # All ingested at once (a --reprocess, an upgrade): the order is the inputs' modification times, not the run's.
    # A shard counted by this run, not committed yet, is ordered by its work order's files.
    store.write_line_counts("0000000000000004", _counter([("s.example", f"Story {i}\n{old}\n")
                                                          for i in range(per_shard)]).to_table())
    store.write_plan("run", "0000000000000004", {"shard_id": "0000000000000004",
                                                 "files": [{"path": "/in/4.jsonl", "mtime_ns": 0}]})
    assert store.line_stats().n_docs("s.example", line_keys([new, old])[0]).tolist() == [2 * per_shard, 0]
    store.write_plan("run", "0000000000000004", {"shard_id": "0000000000000004",
                                                 "files": [{"path": "/in/4.jsonl", "mtime_ns": 9}]})
    assert store.line_stats().n_docs("s.example", line_keys([new, old])[0]).tolist() == [per_shard, per_shard]


def test_a_document_counted_in_two_shards_is_not_counted_against_itself() -> None:
    """The same document in two shards (or two runs): the merge knows it as copied, and its own lines are looked
    up without its copies, so a repeated article is never its own source's template. Totals count every copy,
    as the line counts do."""
    from cleaners.boilerplate import KeyedTexts
    from cleaners.document import CleanConfig, template_counts

    article = "A paragraph of the story that is short.\nAnother short paragraph of it.\n" + TEMPLATE
    others = [("a.example", TEMPLATE + f"Story {i}.") for i in range(4)]
    shard1 = _counter([*others, ("a.example", article)]).to_table()
    shard2 = _counter([("a.example", article), ("a.example", article)]).to_table()  # once: a copy in this shard
    assert {row["kind"] for row in shard1.to_pylist()} == {"line", "document", "top"}
    stats = LineStats.from_tables([shard1, shard2])
    assert stats.source_docs == {"a.example": 6}
    keys, countable = line_keys(article.splitlines())
    assert stats.n_docs("a.example", keys).tolist() == [2, 2, 6, 6]  # as summed: the article's copies in both
    [print_] = KeyedTexts.of([article]).fingerprints().tolist()
    assert stats.times_counted("a.example", print_) == 2
    counts = template_counts(keys, countable, "a.example", stats, CleanConfig(), print_)
    assert counts is not None and counts.n_docs.tolist() == [1, 1, 5, 5] and counts.source_docs == 5
    # Another document's lookup is not changed, and the merged file the tasks read keeps copies and totals.
    assert template_counts(keys, countable, "a.example", stats, CleanConfig(), 12345).n_docs.tolist() == [2, 2, 6, 6]
    merged = LineStats.from_table(stats.to_table())
    assert merged.source_docs == {"a.example": 6} and merged.times_counted("a.example", print_) == 2
    assert merged.n_docs("a.example", keys).tolist() == [2, 2, 6, 6]


def test_document_fingerprints_have_their_own_cap(monkeypatch) -> None:
    """Fingerprints (one per document, counted once each) are not reduced with the lines' cap: a copy among more
    documents than a source's line cap is still known as one."""
    import cleaners.boilerplate as boilerplate

    monkeypatch.setattr(boilerplate, "MAX_LINES_PER_SOURCE", 50)
    docs = [("a.example", TEMPLATE + f"Story number {i}.") for i in range(61)]
    shard1, shard2 = _counter(docs).to_table(), _counter(docs[:1]).to_table()
    stats = LineStats.from_tables([shard1, shard2], window=500)
    [print_] = boilerplate.KeyedTexts.of([docs[0][1]]).fingerprints().tolist()
    assert stats.source_docs == {"a.example": 62} and stats.times_counted("a.example", print_) == 2


def test_version_2_counts_tables_are_read_as_lines() -> None:
    """Tables written before document rows existed (no `kind` column) still count: an upgrade keeps the history."""
    shard = _counter([("a.example", TEMPLATE + f"Story {i}.") for i in range(3)]).to_table()
    lines = shard.filter(pa.compute.equal(shard["kind"], "line")).drop_columns(["kind"])
    old = lines.replace_schema_metadata({b"boilerstrip.schema": b"line_counts", b"boilerstrip.schema_version": b"2"})
    stats = LineStats.from_tables([old])
    assert stats.source_docs == {"a.example": 3} and not stats.copies
    assert stats.n_docs("a.example", line_keys(["Share this article"])[0]).tolist() == [3]


def test_copies_in_several_shards_keep_their_paragraphs(tmp_path) -> None:
    """End to end through both passes: byte-identical copies of an article spread over shards come out as they
    do from one shard (before, 4 copies among 8 documents made the article's paragraphs its source's template)."""
    from datetime import UTC, datetime

    from cleaners.readers import discover
    from cleaners.rulepack import load_rules
    from cleaners.shard import count_shard, plan_shards, process_shard
    from cleaners.store import OutputStore

    raw = tmp_path / "raw" / "news.example.org"
    raw.mkdir(parents=True)
    # Long paragraphs (over MAX_COUNTED_CHARS: never counted) and short ones (counted): the short ones were removed.
    long = [f"Paragraph {i}: " + " ".join(f"the river rose again near the bridge on day {i}, said the mayor." for _ in
                                          range(5)) for i in range(4)]
    short = [f"The minister said on day {i} that the river had risen again, {i} metres above normal." for i in range(4)]
    story = "\n".join(line for pair in zip(long, short, strict=True) for line in pair)
    for i in range(4):
        (raw / f"a{i}.txt").write_text(f"Headline {i}\n\nOther article {i}, a report about a different matter "
                                       f"in a different town.\n{TEMPLATE}")
        (raw / f"x{i}.txt").write_text(f"River report\n\n{story}\n{TEMPLATE}")
    rules = load_rules()

    def cleaned(shard_bytes: int) -> dict[str, str]:
        store = OutputStore.open(str(tmp_path / f"out-{shard_bytes}"))
        shards = plan_shards(discover([str(raw.parent)]), target_bytes=shard_bytes)
        for shard in shards:
            count_shard(shard, store)
        store.write_merged_line_stats()
        stats = store.merged_line_stats()
        for shard in shards:
            process_shard(shard, store, rules, datetime(2026, 1, 1, tzinfo=UTC), "ingest_date=2026-01-01", {},
                          line_stats=stats)
        table = pa.dataset.dataset(store.path("articles"), format="parquet").to_table()
        return {row["input_id"]: row["text"] for row in table.to_pylist()}, len(shards)

    import pyarrow.dataset  # noqa: F401  (pa.dataset)

    one, n_one = cleaned(1 << 30)
    many, n_many = cleaned(1)
    assert n_one == 1 and n_many == 8
    assert many == one
    assert all(story in many[f"news.example.org/x{i}.txt"] for i in range(4))


def test_an_article_fetched_every_day_keeps_its_sources_template_off_and_its_text_on() -> None:
    """An article counted in 8 shards (8 daily runs) among 4 others: cleaned, it sees the source as 5 documents,
    the template on all of them and its own lines on itself alone (not "on 57% of 7 documents")."""
    from cleaners.boilerplate import KeyedTexts
    from cleaners.document import CleanConfig, template_counts

    article = "A paragraph of the story that is short.\n" + TEMPLATE
    others = [("a.example", TEMPLATE + f"Story {i}.") for i in range(4)]
    shards = [_counter([*others, ("a.example", article)]).to_table()]
    shards += [_counter([("a.example", article)]).to_table() for _ in range(7)]
    stats = LineStats.from_tables(shards)
    keys, countable = line_keys(article.splitlines())
    [print_] = KeyedTexts.of([article]).fingerprints().tolist()
    counts = template_counts(keys, countable, "a.example", stats, CleanConfig(), print_)
    assert stats.source_docs == {"a.example": 12} and counts is not None
    assert counts.source_docs == 5 and counts.n_docs.tolist() == [1, 5, 5]


def test_a_small_sources_template_must_be_on_at_least_five_of_its_documents(rules) -> None:
    """At 6 documents, a line on 3 or 4 of them (an ingredient, a half-time score) is chance, not template: it
    stays; the footer on 5 of 6 goes. At 10 documents, 5 (50%) is enough."""
    from cleaners.batch import BatchItem, clean_batch

    footer = "Recipes from the Example Kitchen"

    def recipe(i: int, salt: bool, with_footer: bool) -> str:
        lines = [f"Dish number {i}", f"A paragraph that describes dish {i}, long enough to read as its own text.",
                 "Salt" if salt else f"{i + 1} eggs", f"Cook dish {i} for twenty minutes, then let it rest."]
        return "\n".join(lines + [footer] * with_footer)

    six = [BatchItem("kitchen.example", recipe(i, salt=i < 4, with_footer=i < 5)) for i in range(6)]
    removed = [{r.text: r.rule for r in result.removed} for result in clean_batch(six, rules)]
    assert all("Salt" not in lines for lines in removed), "on 4 of 6 documents: kept"
    assert [lines.get(footer) for lines in removed] == ["learned.source-boilerplate"] * 5 + [None]
    ten = [BatchItem("kitchen.example", recipe(i, salt=i < 5, with_footer=True)) for i in range(10)]
    removed = [{r.text: r.rule for r in result.removed} for result in clean_batch(ten, rules)]
    assert [lines.get("Salt") for lines in removed[:5]] == ["learned.source-boilerplate"] * 5
