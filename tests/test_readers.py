"""Input discovery, decoding and the readers: every input becomes a document or a reject."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest

from cleaners.decode import decode_bytes
from cleaners.readers import InputError, discover, read_file
from cleaners.types import RawDocument, Reject, RejectReason

ARTICLE = "A headline\n\nThe body of the article is here, long enough to be an article paragraph."


def _read_all(paths: list[str]) -> list[RawDocument | Reject]:
    return [item for f in discover(paths) for item in read_file(f)]


def test_folder_sources_and_input_ids(tmp_path: Path) -> None:
    for folder in ("Example.com/2024", "2026-11-26/news.example.org/world", "feeds/wire", "v1.2"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "a.txt").write_text(ARTICLE)
    (tmp_path / "root.txt").write_text(ARTICLE)
    files = {f.relpath: f for f in discover([str(tmp_path)])}
    # The first folder named like a host (dated folders below or above it aside), else the folder path.
    assert files["Example.com/2024/a.txt"].source == "example.com"
    assert files["2026-11-26/news.example.org/world/a.txt"].source == "news.example.org"
    assert files["feeds/wire/a.txt"].source == "feeds/wire"
    assert files["v1.2/a.txt"].source == "v1.2"
    assert files["root.txt"].source == "unknown"


def test_host_folders_are_one_source_whichever_folder_the_run_is_given(tmp_path: Path) -> None:
    """A host-named folder ends in a real top-level domain ("snapshots.old" is not one); "www." and case go; a run
    given a folder inside a host folder (or one file) finds the same source and input path as a run over its
    parent, so the same file gets the same doc_id."""
    for folder in ("snapshots.old/420intel.com", "www.Example.com", "420intel.com/2026-11-26"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "a.txt").write_text(ARTICLE)
    files = {f.relpath: f.source for f in discover([str(tmp_path)])}
    assert files == {"snapshots.old/420intel.com/a.txt": "420intel.com", "www.Example.com/a.txt": "example.com",
                     "420intel.com/2026-11-26/a.txt": "420intel.com"}
    for given in (tmp_path / "420intel.com", tmp_path / "420intel.com" / "2026-11-26",
                  tmp_path / "420intel.com" / "2026-11-26" / "a.txt"):
        [found] = discover([str(given)])
        assert (found.relpath, found.source) == ("420intel.com/2026-11-26/a.txt", "420intel.com")
    # A host folder inside a host folder: the outer one, whichever folder the run is given.
    (tmp_path / "420intel.com" / "cdn.example.com").mkdir()
    (tmp_path / "420intel.com" / "cdn.example.com" / "b.txt").write_text(ARTICLE)
    for given in (tmp_path, tmp_path / "420intel.com"):
        found = {f.relpath: f.source for f in discover([str(given)])}
        assert found["420intel.com/cdn.example.com/b.txt"] == "420intel.com"
    # Folders above the root other than a site's dated layers are not looked at (a home folder named like a host).
    (tmp_path / "li.wang" / "raw" / "feeds").mkdir(parents=True)
    (tmp_path / "li.wang" / "raw" / "feeds" / "c.txt").write_text(ARTICLE)
    [found] = discover([str(tmp_path / "li.wang" / "raw")])
    assert (found.relpath, found.source) == ("feeds/c.txt", "feeds")


def test_a_declared_host_source_is_written_as_folders_and_urls_are(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    records = [{"id": "a", "text": ARTICLE, "source": " Example.com "}, {"id": "b", "text": ARTICLE,
               "source": "www.example.com"}, {"id": "c", "text": ARTICLE, "url": "https://WWW.Example.com/x"},
               {"id": "d", "text": ARTICLE, "source": "Reuters Wire"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert [d.source for d in _read_all([str(path)])] == ["example.com", "example.com", "example.com", "Reuters Wire"]


def test_several_inputs_and_globs(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.txt").write_text(ARTICLE)
    (tmp_path / "b" / "y.txt").write_text(ARTICLE)
    (tmp_path / "b" / "z.txt").write_text(ARTICLE)
    files = discover([str(tmp_path / "a"), str(tmp_path / "b" / "*.txt"), str(tmp_path / "a" / "x.txt")])
    assert sorted(f.relpath for f in files) == ["x.txt", "y.txt", "z.txt"]  # x.txt once


def test_a_glob_that_matches_folders_reads_them_as_folder_inputs(tmp_path: Path) -> None:
    for folder in ("raw/420intel.com", "raw/example.org"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "a.txt").write_text(ARTICLE)
    (tmp_path / "raw" / "b.txt").write_text(ARTICLE)
    files = discover([str(tmp_path / "raw" / "*")])
    assert sorted((f.relpath, f.source) for f in files) == [
        ("420intel.com/a.txt", "420intel.com"), ("b.txt", "unknown"), ("example.org/a.txt", "example.org")]


def test_a_glob_does_not_follow_a_symlinked_folder_or_walk_a_folder_twice(tmp_path: Path) -> None:
    (tmp_path / "raw" / "a.com" / "2026").mkdir(parents=True)
    (tmp_path / "raw" / "a.com" / "2026" / "x.txt").write_text(ARTICLE)
    (tmp_path / "raw" / "mirror").symlink_to(tmp_path / "raw" / "a.com", target_is_directory=True)
    for pattern in ("*", "**"):
        files = discover([str(tmp_path / "raw" / pattern)])
        assert [(f.relpath, f.source) for f in files] == [("a.com/2026/x.txt", "a.com")], pattern


def test_overlapping_inputs_name_a_file_alike_in_any_order(tmp_path: Path) -> None:
    """A folder and a file (or glob) inside it reach one file from two roots: the outer root names it, whichever
    input comes first, so its source, input_id and doc_id do not depend on the command line's order."""
    (tmp_path / "in" / "feeds" / "wire").mkdir(parents=True)
    (tmp_path / "in" / "feeds" / "wire" / "n1.txt").write_text(ARTICLE)
    folder, inner = str(tmp_path / "in"), str(tmp_path / "in" / "feeds" / "wire" / "n1.txt")
    glob_inside = str(tmp_path / "in" / "feeds" / "*" / "*.txt")
    for order in ([folder, inner], [inner, folder], [glob_inside, folder], [folder, glob_inside]):
        [found] = discover(order)
        assert (found.relpath, found.source) == ("feeds/wire/n1.txt", "feeds/wire"), order


def test_a_symlinked_folder_left_out_is_named_in_the_log(tmp_path: Path, caplog) -> None:
    (tmp_path / "elsewhere.com").mkdir()
    (tmp_path / "elsewhere.com" / "x.txt").write_text(ARTICLE)
    (tmp_path / "in" / "a.com").mkdir(parents=True)
    (tmp_path / "in" / "a.com" / "y.txt").write_text(ARTICLE)
    (tmp_path / "in" / "elsewhere.com").symlink_to(tmp_path / "elsewhere.com", target_is_directory=True)
    for inputs in ([str(tmp_path / "in")], [str(tmp_path / "in" / "*")]):
        caplog.clear()
        with caplog.at_level("WARNING", logger="cleaners.readers"):
            assert [f.relpath for f in discover(inputs)] == ["a.com/y.txt"]
        [message] = [record.getMessage() for record in caplog.records]
        assert "in/elsewhere.com' is a symlinked folder: not followed" in message, inputs


def test_a_symlink_to_a_file_the_run_reads_is_read_once(tmp_path: Path, caplog) -> None:
    """``latest.txt -> 2026-11-26.txt`` beside it: one file, read once under its own name (read twice, its article was
    there twice under two doc_ids). Two links to one file outside the inputs: read once, under the first name. A
    dangling link stays an input (an `unreadable` reject)."""
    site = tmp_path / "in" / "a.com"
    site.mkdir(parents=True)
    (site / "2026-11-26.txt").write_text(ARTICLE)
    (site / "latest.txt").symlink_to(site / "2026-11-26.txt")
    (tmp_path / "outside.txt").write_text(ARTICLE + " Outside.")
    (site / "x1.txt").symlink_to(tmp_path / "outside.txt")
    (site / "x2.txt").symlink_to(tmp_path / "outside.txt")
    (site / "gone.txt").symlink_to(tmp_path / "nowhere.txt")
    with caplog.at_level("WARNING", logger="cleaners.readers"):
        files = discover([str(tmp_path / "in")])
    assert [f.relpath for f in files] == ["a.com/2026-11-26.txt", "a.com/gone.txt", "a.com/x1.txt"]
    assert sorted(record.getMessage().split("'")[1].rsplit("/", 1)[-1] for record in caplog.records) == [
        "latest.txt", "x2.txt"]


def test_a_folder_that_cannot_be_listed_is_a_reject_not_a_silent_gap(tmp_path: Path, monkeypatch) -> None:
    import os

    for folder in ("in/open.example", "in/locked.example"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "a.txt").write_text(ARTICLE)
    real_scandir = os.scandir

    def scandir(path=None):
        if str(path).endswith("locked.example"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    items = _read_all([str(tmp_path / "in")])
    assert [d.input_id for d in items if isinstance(d, RawDocument)] == ["open.example/a.txt"]
    [reject] = [r for r in items if isinstance(r, Reject)]
    assert reject.reason_code is RejectReason.UNREADABLE and reject.input_file.endswith("/in/locked.example")
    assert "could not be listed" in reject.reason


def test_missing_input_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or folder"):
        discover([str(tmp_path / "nope")])
    with pytest.raises(InputError, match="matches no file"):
        discover([str(tmp_path / "*.txt")])


def test_jsonl_records_sources_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    lines = [
        json.dumps({"id": "r1", "text": ARTICLE, "url": "https://www.example.com/a", "title": "A headline"}),
        "{not json",
        json.dumps({"id": "r2", "text": ARTICLE, "source": "wire"}),
        json.dumps({"id": "r3"}),
        "",
        json.dumps({"id": "r1", "text": ARTICLE}),
        json.dumps(["a list"]),
    ]
    path.write_text("\n".join(lines) + "\n")
    items = _read_all([str(path)])
    docs = [i for i in items if isinstance(i, RawDocument)]
    rejects = {i.line_no: i.reason_code for i in items if isinstance(i, Reject)}
    assert [(d.input_id, d.source, d.line_no) for d in docs] == [("r1", "example.com", 1), ("r2", "wire", 3)]
    assert docs[0].title == "A headline"
    assert rejects == {2: RejectReason.MALFORMED_RECORD, 4: RejectReason.MISSING_TEXT,
                       6: RejectReason.DUPLICATE_ID, 7: RejectReason.MALFORMED_RECORD}


def test_jsonl_author_and_published_as_the_record_gives_them(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    records = [{"id": "a", "text": ARTICLE, "author": "Jane Doe", "published": "2024-05-01T22:30:00-05:00"},
               {"id": "b", "text": ARTICLE, "author": "  ", "published": "2024-05-01"},
               {"id": "c", "text": ARTICLE, "author": 7, "published": "not a date"},
               {"id": "d", "text": ARTICLE, "published": 1714600000}]  # epoch seconds: 21:46 UTC
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    docs = _read_all([str(path)])
    # The date as written, in the record's own offset (22:30 at -05:00 is May 2 in UTC, May 1 where it was written).
    assert [(d.author, str(d.published)) for d in docs] == [("Jane Doe", "2024-05-01"), (None, "2024-05-01"),
                                                            (None, "None"), (None, "2024-05-01")]
    assert [d.unread_fields for d in docs] == [(), (), ("published",), ()]  # counted and logged by the run


@pytest.mark.parametrize(("written", "expected"), [
    ("Tue, 05 May 2024 10:00:00 GMT", "2024-05-05"),  # RFC 2822, as feeds write it
    ("May 1, 2025", "2025-05-01"), ("1 May 2025 14:30", "2025-05-01"), ("Sept. 3, 2024", "2024-09-03"),
    ("01/02/2025", None),  # January or February: not guessed
    ("May 2025", None), ("Q3 2025", None), ("2025-13-45", None),  # incomplete or not a date
    ("Jan 1, 2024 5pm PST", None),  # a zone name the parser does not know: not read as UTC
])
def test_dates_are_read_when_they_are_unambiguous(tmp_path: Path, written: str, expected: str | None) -> None:
    path = tmp_path / "batch.jsonl"
    path.write_text(json.dumps({"id": "a", "text": ARTICLE, "published": written, "fetched_at": written}) + "\n")
    [doc] = _read_all([str(path)])
    assert (str(doc.published) if doc.published else None) == expected
    assert (doc.fetched_at is None) == (expected is None)
    assert doc.unread_fields == (() if expected else ("published", "fetched_at"))


@pytest.mark.parametrize("data", [b"", b"\n  \n\n", gzip.compress(b"")])
def test_a_jsonl_file_without_records_is_a_reject(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / ("batch.jsonl.gz" if data.startswith(b"\x1f\x8b") else "batch.jsonl")
    path.write_bytes(data)
    [reject] = _read_all([str(path)])
    assert isinstance(reject, Reject) and reject.reason_code is RejectReason.EMPTY
    assert reject.input_file == str(path) and "no records" in reject.reason


def test_a_corrupt_stream_or_odd_values_are_rejects_not_errors(tmp_path: Path) -> None:
    """A gzip stream corrupt inside (zlib's own error), a date out of range in UTC and an id too long to be a
    number's text end as rejects or missing values; nothing is raised, so the run goes on with the other files."""
    data = gzip.compress(b"".join(json.dumps({"id": str(i), "text": ARTICLE}).encode() + b"\n" for i in range(20)))
    (tmp_path / "corrupt.jsonl.gz").write_bytes(data[:30] + bytes(b ^ 0xFF for b in data[30:60]) + data[60:])
    early = json.dumps({"id": "early", "text": ARTICLE, "fetched_at": "0001-01-01T00:00:00+01:00"})
    long_id = '{"id": ' + "9" * 5000 + ', "text": ' + json.dumps(ARTICLE) + "}"  # json.dumps refuses to write it
    (tmp_path / "odd.jsonl").write_text(f"{early}\n{long_id}\n")
    items = {(Path(i.input_file).name, i.line_no): i for i in _read_all([str(tmp_path)])}
    corrupt = items[("corrupt.jsonl.gz", 1)]
    assert isinstance(corrupt, Reject) and corrupt.reason_code is RejectReason.CORRUPT
    assert corrupt.reason.startswith("reading line 1 failed: ") and "replace it with a whole copy" in corrupt.reason
    assert corrupt.n_bytes == (tmp_path / "corrupt.jsonl.gz").stat().st_size  # nothing of it was read
    early = items[("odd.jsonl", 1)]
    assert isinstance(early, RawDocument) and early.fetched_at is None
    epochs = [{"id": f"e{i}", "text": ARTICLE, "fetched_at": value}
              for i, value in enumerate([1714600000, 1714600000123, "2024-05-01 22:00", True, "May 1, 2024",
                                         "1714600000", "1714600000123", "20240501", "12345678", "2024050112",
                                         "202405011230"])]
    (tmp_path / "epochs.jsonl").write_text("".join(json.dumps(record) + "\n" for record in epochs))
    fetched = [d.fetched_at.isoformat() if d.fetched_at else None for d in _read_all([str(tmp_path / "epochs.jsonl")])]
    assert fetched == ["2024-05-01T21:46:40+00:00", "2024-05-01T21:46:40.123000+00:00", "2024-05-01T22:00:00+00:00",
                       None, "2024-05-01T00:00:00+00:00",
                       # epoch digits as text; 8 digits are an ISO basic date, or nothing
                       "2024-05-01T21:46:40+00:00", "2024-05-01T21:46:40.123000+00:00", "2024-05-01T00:00:00+00:00",
                       None, None, None]  # a compact date and hour (or minute) is not an epoch
    long_id = items[("odd.jsonl", 2)]
    assert isinstance(long_id, Reject) and long_id.reason_code is RejectReason.MALFORMED_RECORD
    assert "line 2 could not be read: ValueError" in long_id.reason


def test_a_record_nested_too_deeply_says_so(tmp_path: Path) -> None:
    """JSON nested past Python's parser (valid JSON, but no article) is a malformed record that says why, not a "not
    valid JSON" that sends the user looking for a syntax error; the record after it is read."""
    deep = '{"id": "deep", "text": "x", "extra": ' + "[" * 100_000 + "]" * 100_000 + "}"
    (tmp_path / "nested.jsonl").write_text(deep + "\n" + json.dumps({"id": "next", "text": ARTICLE}) + "\n")
    first, second = _read_all([str(tmp_path / "nested.jsonl")])
    assert isinstance(first, Reject) and first.reason_code is RejectReason.MALFORMED_RECORD
    assert "nested too deeply" in first.reason and "not valid JSON" not in first.reason
    assert isinstance(second, RawDocument) and second.input_id == "next"


def test_gzipped_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(json.dumps({"id": "g1", "text": ARTICLE}) + "\n")
    [doc] = _read_all([str(path)])
    assert isinstance(doc, RawDocument) and doc.input_id == "g1"


def test_html_file_is_extracted_with_metadata(tmp_path: Path) -> None:
    body = "<p>" + "The council approved the new budget after a long debate on Tuesday. " * 8 + "</p>"
    html = (f"<html><head><title>Budget approved</title><meta name='author' content='Ana Ruiz'></head>"
            f"<body><nav>Home | News</nav><article><h1>Budget approved</h1>{body}</article></body></html>")
    (tmp_path / "page.html").write_text(html)
    [doc] = _read_all([str(tmp_path / "page.html")])
    assert isinstance(doc, RawDocument)
    assert doc.extractor == "trafilatura"
    assert doc.title == "Budget approved" and doc.author == "Ana Ruiz"
    assert "approved the new budget" in doc.text


def test_an_html_page_publication_date_is_not_guessed_from_its_prose(tmp_path: Path) -> None:
    """A year in the article's text is not its publication date (htmldate's extensive search made "In 2022, ..."
    2022-01-01); the page's metadata is."""
    body = "<p>" + "In 2022, he explained that the bridge would be rebuilt within two years. " * 6 + "</p>"
    html = ("<html><head>{meta}<title>Bridge</title></head><body><article><h1>Bridge</h1>" + body
            + "</article></body></html>")
    (tmp_path / "undated.html").write_text(html.format(meta=""))
    (tmp_path / "dated.html").write_text(html.format(
        meta="<meta property='article:published_time' content='2024-03-05T10:00:00Z'>"))
    docs = {Path(doc.input_file).name: doc for doc in _read_all([str(tmp_path)])}
    assert docs["undated.html"].published is None
    assert str(docs["dated.html"].published) == "2024-03-05"


def test_html_fallback_to_beautifulsoup(tmp_path: Path) -> None:
    (tmp_path / "tiny.html").write_text("<html><body><div>Short note.</div></body></html>")
    [doc] = _read_all([str(tmp_path / "tiny.html")])
    assert isinstance(doc, RawDocument)
    assert doc.extractor in {"trafilatura", "beautifulsoup4"}
    assert "Short note." in doc.text


def test_empty_and_binary_files_are_rejects(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.txt").write_bytes(b"  \n\t\n")
    (tmp_path / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (tmp_path / "notes.docx").write_bytes(b"whatever")
    reasons = {Path(i.input_file).name: i.reason_code for i in _read_all([str(tmp_path)]) if isinstance(i, Reject)}
    assert reasons == {"empty.txt": RejectReason.EMPTY, "blank.txt": RejectReason.EMPTY,
                       "image.txt": RejectReason.BINARY, "notes.docx": RejectReason.UNSUPPORTED}


@pytest.mark.parametrize(
    ("text", "data", "encoding"),
    [
        ("Crème brûlée à la carte, déjà vu.", "Crème brûlée à la carte, déjà vu.".encode(), "utf-8"),
        ("Crème brûlée à la carte, déjà vu, naïve café.",
         "Crème brûlée à la carte, déjà vu, naïve café.".encode("cp1252"), None),
        ("Grüße aus Köln", "Grüße aus Köln".encode("utf-16"), "utf-16"),
        ("Plain text in UTF-16 without a byte-order mark.",
         "Plain text in UTF-16 without a byte-order mark.".encode("utf-16-le"), "utf-16-le"),
        # Cut after the first byte of a character (an odd byte count): the cut character goes, the rest is text.
        ("Plain text in UTF-16, cut short", "Plain text in UTF-16, cut short!".encode("utf-16-le")[:-1], "utf-16-le"),
    ],
)
def test_decoding(text: str, data: bytes, encoding: str | None) -> None:
    decoded = decode_bytes(data)
    assert decoded.failure is None
    assert decoded.text == text
    if encoding:
        assert decoded.encoding == encoding
    else:
        assert decoded.encoding not in (None, "utf-8")


def test_a_record_id_that_is_not_a_string_or_number_is_a_reject_saying_so(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    records = [{"id": {"nested": True}, "text": ARTICLE}, {"id": [1], "text": ARTICLE}, {"id": 7, "text": ARTICLE},
               {"id": True, "text": ARTICLE}]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    items = _read_all([str(path)])
    assert [(i.input_id, type(i).__name__) for i in items] == [
        ("batch.jsonl:1", "Reject"), ("batch.jsonl:2", "Reject"), ("7", "RawDocument"), ("batch.jsonl:4", "Reject")]
    assert "`id` must be a string or a whole number, not dict" in items[0].reason


def test_the_fallback_extractor_reads_a_body_after_an_unclosed_head(monkeypatch) -> None:
    """Without </head> (optional in HTML5) html.parser nests the body in the head: the fallback leaves out the
    head's elements, not the head, so the body's text is still read; a page of scripts alone has none."""
    import cleaners.extract as extract

    def failing(*args, **kwargs):
        raise RuntimeError("simulated trafilatura failure")

    monkeypatch.setattr(extract.trafilatura, "bare_extraction", failing)
    found = extract.extract_html("<html><head><title>T</title>\n<body><h1>Head</h1><p>Body text here.</p>")
    assert found is not None and (found.text, found.title, found.extractor) == ("Head\nBody text here.", "T",
                                                                               "beautifulsoup4")
    assert extract.extract_html("<html><head><title>x</title></head><body><script>1;</script></body></html>") is None


def test_object_storage_inputs_skip_hidden_folders_and_read_folders_a_glob_matches(tmp_path: Path) -> None:
    """On fsspec URLs as on local paths: files under hidden folders (.git/, .cache/) are not inputs, and a glob that
    matches folders reads them as folder inputs (it matched no object before); ``local://`` is a local path."""
    import fsspec

    fs = fsspec.filesystem("memory")
    for name in ("news.example.com/a.txt", "news.example.com/.cache/b.txt", ".git/c.txt", "other.example.org/d.txt",
                 "other.example.org/.e.txt"):
        with fs.open(f"/boilerstrip-test-raw/{name}", "w") as handle:
            handle.write("Some article text.\n")
    try:
        whole = discover(["memory://boilerstrip-test-raw"])
        assert sorted(f.relpath for f in whole) == ["news.example.com/a.txt", "other.example.org/d.txt"]
        assert [f.relpath for f in discover(["memory://boilerstrip-test-raw/*"])] == [f.relpath for f in whole]
        listed: list[str] = []
        find = type(fs).find
        try:  # "**" matches every folder: only the outermost is listed, each object read once
            type(fs).find = lambda self, path, *args, **kwargs: listed.append(path) or find(self, path, *args, **kwargs)
            deep = discover(["memory://boilerstrip-test-raw/**"])
        finally:
            type(fs).find = find
        assert sorted(f.relpath for f in deep) == [f.relpath for f in whole]
        assert len(listed) <= 2, listed
    finally:
        fs.rm("/boilerstrip-test-raw", recursive=True)
    (tmp_path / "raw" / "news.example.com").mkdir(parents=True)
    (tmp_path / "raw" / "news.example.com" / "a.txt").write_text("Some article text.\n")
    assert discover([f"local://{tmp_path / 'raw'}"]) == discover([str(tmp_path / "raw")])


def test_a_jsonl_file_in_utf16_is_one_reject_saying_to_re_encode_it(tmp_path: Path) -> None:
    """UTF-16 (with or without its byte-order mark) split at its 0x0A bytes gave a malformed record per line and
    one more for the trailing NUL, none saying why: it is one `undecodable` reject naming the encoding."""
    records = "".join(json.dumps({"id": str(n), "text": f"Story {n}."}) + "\n" for n in range(3))
    for name, data in (("utf-16", records.encode("utf-16")), ("utf-16-le", records.encode("utf-16-le")),
                       ("utf-32", records.encode("utf-32")), ("bom-blank", ("\n" + records).encode("utf-16")),
                       ("blank-le", ("\n" + records).encode("utf-16-le"))):
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(data)
        [reject] = _read_all([str(path)])
        assert isinstance(reject, Reject) and reject.reason_code is RejectReason.UNDECODABLE, name
        assert "UTF-16 or UTF-32" in reject.reason and "re-encode it" in reject.reason
        assert reject.n_bytes == path.stat().st_size
    # A UTF-8 file whose first line a crashed writer left as NUL bytes: one bad record, the others read.
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_bytes(b"\x00" * 64 + b"\n" + records.encode("utf-8"))
    items = _read_all([str(damaged)])
    assert [type(item) for item in items] == [Reject, RawDocument, RawDocument, RawDocument]
    assert items[0].reason_code is RejectReason.MALFORMED_RECORD


def test_a_record_with_an_unreadable_url_is_kept(tmp_path: Path) -> None:
    """The optional ``url`` that urllib cannot read ("http://[::1/a") cost the whole record (a malformed_record
    reject under its file and line): the record is read, its source from its folder."""
    folder = tmp_path / "feed.example.org"
    folder.mkdir()
    (folder / "recs.jsonl").write_text(json.dumps({"id": "badurl", "text": ARTICLE, "url": "http://[::1/a"}) + "\n")
    [item] = _read_all([str(tmp_path)])
    assert isinstance(item, RawDocument) and item.input_id == "badurl" and item.source == "feed.example.org"


def test_html_neither_extractor_can_parse_is_an_extraction_failed_reject(tmp_path: Path, monkeypatch) -> None:
    """When the fallback fails too (beautifulsoup4's RecursionError on pathological nesting), the page is an
    `extraction_failed` reject naming the error: it was an `unreadable` one, which every run tries again."""
    import cleaners.readers as readers

    def failing(html: str, url: str | None = None):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(readers, "extract_html", failing)
    page = tmp_path / "site.example" / "deep.html"
    page.parent.mkdir()
    page.write_text("<html><body><p>text</p></body></html>")
    [reject] = _read_all([str(tmp_path)])
    assert isinstance(reject, Reject) and reject.reason_code is RejectReason.EXTRACTION_FAILED
    assert "RecursionError" in reject.reason and reject.input_id == "site.example/deep.html"


def test_an_attribute_flood_is_cut_before_lxml_parses_the_page() -> None:
    """lxml checks each attribute of an element against the others: 20,000 on one <div> took 2.9 s, and a 16 MB page
    could hold a task for hours. Tags of over MAX_ATTRIBUTES attributes are cut to their name first (a ">" inside a
    quoted value does not hide one); ordinary markup, long values included, is left as it is."""
    from cleaners.extract import MAX_ATTRIBUTES, _without_attribute_floods, extract_html

    body = "<p>" + " ".join([ARTICLE] * 3) + "</p>"
    flood = " ".join(f"a{i}=x" for i in range(200_000))
    html = f'<html><head><title>Flood</title></head><body><div a0=">" {flood}>{body}</div></body></html>'
    started = time.perf_counter()
    extracted = extract_html(html)
    assert time.perf_counter() - started < 5  # ~0.2 s; uncut, lxml alone took minutes
    assert extracted is not None and "long enough to be an article paragraph" in extracted.text
    assert _without_attribute_floods(f'<div a0=">" {flood}>x</div>') == "<div>x</div>"
    # Forms where HTML's tokenizer stops and lxml reads on: a backtick or a "<" in an unquoted value, "==", no spaces.
    for attribute in ("a{}=`x", "a{}=x<y", "a{}==x", 'a{}="x"'):
        joiner = "" if attribute.endswith('"') else " "
        page = f"<html><body><div {joiner.join(attribute.format(i) for i in range(20_000))}>{body}</div></body></html>"
        started = time.perf_counter()
        extracted = extract_html(page)
        assert time.perf_counter() - started < 5, attribute  # 0.74 s of lxml uncut, 7 s at 60,000
        assert extracted is not None and "long enough to be an article paragraph" in extracted.text, attribute
    ordinary = ('<html><body><svg><path d="' + "M 1 2 L 3 4 " * 2_000 + '"/></svg><div '
                + " ".join(f'data-k{i}="v {i}"' for i in range(MAX_ATTRIBUTES)) + f">{body}</div></body></html>")
    assert _without_attribute_floods(ordinary) is ordinary


def test_ids_of_records_without_one_still_clash_with_explicit_ids(tmp_path: Path) -> None:
    """A record without an id is known as "file:line" (kept as a bit per line, not a string per record): an explicit
    id spelling it, before or after, is still a duplicate; "file:07" and ids of other lines are not."""
    records = [{"text": ARTICLE}, {"id": "ids.jsonl:1", "text": ARTICLE}, {"id": "ids.jsonl:5", "text": ARTICLE},
               {"id": "ids.jsonl:07", "text": ARTICLE}, {"text": ARTICLE}, {"text": ARTICLE},
               {"id": "ids.jsonl:6", "text": ARTICLE}, {"id": "ids.jsonl:2", "text": ARTICLE}]
    (tmp_path / "ids.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    records.append({"id": "ids.jsonl:" + "1" * 5_000, "text": ARTICLE})  # past int()'s digits: an id like any other
    (tmp_path / "ids.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    items = _read_all([str(tmp_path / "ids.jsonl")])
    assert isinstance(items[-1], RawDocument)
    items = items[:-1]
    outcome = {i.line_no: (i.input_id, isinstance(i, Reject) and i.reason_code) for i in items}
    assert outcome == {1: ("ids.jsonl:1", False), 2: ("ids.jsonl:1", RejectReason.DUPLICATE_ID),
                       3: ("ids.jsonl:5", False), 4: ("ids.jsonl:07", False),
                       5: ("ids.jsonl:5", RejectReason.DUPLICATE_ID), 6: ("ids.jsonl:6", False),
                       7: ("ids.jsonl:6", RejectReason.DUPLICATE_ID), 8: ("ids.jsonl:2", False)}


def test_jsonl_with_lines_ending_in_cr_alone_says_how_to_fix_it(tmp_path: Path) -> None:
    """Records that end in CR alone (classic Mac OS line ends) read as one line: the reject says why and what to do;
    CRLF line ends read as records."""
    (tmp_path / "in").mkdir()
    records = [json.dumps({"id": name, "text": ARTICLE}) for name in ("a", "b")]
    (tmp_path / "in" / "mac.jsonl").write_bytes("\r".join(records).encode() + b"\r")
    (tmp_path / "in" / "windows.jsonl").write_bytes("\r\n".join(records).encode() + b"\r\n")
    items = _read_all([str(tmp_path / "in")])
    [reject] = [item for item in items if isinstance(item, Reject)]
    assert reject.reason_code is RejectReason.MALFORMED_RECORD and reject.input_file.endswith("mac.jsonl")
    assert "carriage return alone" in reject.reason and "convert the line ends to LF" in reject.reason
    assert sorted(item.input_id for item in items if isinstance(item, RawDocument)) == ["a", "b"]
