"""A corpus of bad and awkward inputs, generated at test time (no binary junk in the repository).

:func:`build_corpus` writes every case under a folder and returns what each input must become: an
article, or a reject with a given ``reason_code``. ``tests/test_bad_inputs.py`` checks the readers on
each case and runs the whole corpus through the flow once.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cleaners.readers import printable_name

ARTICLE = ("Council approves the new budget\n\n"
           "The city council approved the budget on Tuesday after a long debate about roads and schools.\n\n"
           "The mayor said the vote was a step forward, and the opposition promised to keep asking questions.\n")
FRENCH = ("Le conseil municipal approuve le budget\n\n"
          "Crème brûlée à la carte, déjà vu : le conseil a approuvé le budget mardi après un long débat "
          "sur les écoles et les routes. Le maire a précisé que les travaux débuteront à l'automne.\n")
# Lines that the shipped generic rule pack removes (cleaners/rules/generic.toml): share.prompt,
# subscribe.newsletter, comments.widget-placeholder, share.follow-us, related.read-more, nav.skip-link.
BOILERPLATE_ONLY = ("Share this article\nSubscribe to our newsletter\nDisqus content widget\n"
                    "Follow us on Twitter\nRead more\nSkip to main content\n")
ARTICLE_OUTCOME = "article"
# A chmod-000 file is unreadable only when the tests do not run as root (root reads it anyway).
RUNNING_AS_ROOT = os.geteuid() == 0


@dataclass(frozen=True)
class Case:
    """One input (a file, or one line of a JSONL file) and what it must become."""

    relpath: str                 # InputFile.relpath: the path under the corpus root, '/'-separated
    outcome: str                 # "article" or a reject reason_code
    line_no: int | None = None   # the JSONL line, for one record of a JSONL file
    why: str = ""
    record_id: str | None = None  # the JSONL record's input_id (its id, else path:line)
    # Extra checks on the article row (a dict of the articles schema) or the reject row.
    check: Callable[[dict[str, Any]], None] | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[str, int | None]:
        return (self.relpath, self.line_no)

    @property
    def input_id(self) -> str:
        return self.record_id or self.relpath

    @property
    def test_id(self) -> str:
        return repr(self.relpath)[1:-1] + (f":{self.line_no}" if self.line_no else "")


def _png(width: int = 4, height: int = 4) -> bytes:
    """A real, tiny PNG image followed by trailing junk bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + bytes(range(width * 3)) for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"") + bytes(range(256)) * 8)


def _no_cr(row: dict[str, Any]) -> None:
    assert "\r" not in row["text"] and "\n\n" in row["text"], repr(row["text"][:200])


def _no_nul(row: dict[str, Any]) -> None:
    assert "\x00" not in row["text"] and "budget" in row["text"], repr(row["text"][:200])


def _encoding(expected: str, must_contain: str) -> Callable[[dict[str, Any]], None]:
    def check(row: dict[str, Any]) -> None:
        assert row["encoding"] == expected, (row["encoding"], expected)
        assert must_contain in row["text"], (must_contain, row["text"][:300])
    return check


def _extracted(row: dict[str, Any]) -> None:
    assert row["extractor"] in ("trafilatura", "beautifulsoup4"), row["extractor"]
    assert "<p>" not in row["text"] and "approved the budget" in row["text"], row["text"][:300]


def _reason_mentions(*words: str) -> Callable[[dict[str, Any]], None]:
    def check(row: dict[str, Any]) -> None:
        for word in words:
            assert word in row["reason"], (word, row["reason"])
    return check


def write_big_article(path: Path, n_bytes: int) -> None:
    """An article of ``n_bytes`` of ordinary text, written in 1 MiB blocks."""
    paragraph = ("The council met again today to discuss the budget, the roads and the schools. " * 12 + "\n\n")
    block = (paragraph * (2**20 // len(paragraph) + 1)).encode()[: 2**20]
    with path.open("wb") as handle:
        handle.write(b"A very long article\n\n")
        remaining = n_bytes - 21
        while remaining > 0:
            handle.write(block[:remaining])
            remaining -= len(block)


def build_corpus(root: Path, big_bytes: int = 50 * 2**20, long_line_bytes: int = 5 * 2**20) -> list[Case]:
    """Write the bad-input corpus under ``root`` (created) and return the expected outcome of each input.

    ``big_bytes``: size of the oversize article (over the default 16 MiB document limit);
    ``long_line_bytes``: size of the single-line article (under the limit).
    """
    root.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def add(relpath: str, data: bytes | str, outcome: str, why: str, check=None) -> Path:
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        cases.append(Case(relpath, outcome, why=why, check=check))
        return path

    # --- encodings ---------------------------------------------------------------------------------
    damage = b"A stray \xff byte, a cut \xc3 sequence and a \x93cp1252\x94 quote.\n"
    add("enc/invalid-utf8.txt", FRENCH.encode() + damage,
        ARTICLE_OUTCOME, "UTF-8 with invalid bytes: each invalid byte read as cp1252",
        _encoding("utf-8+cp1252", "Crème brûlée à la carte"))
    add("enc/utf16-bom.txt", FRENCH.encode("utf-16"), ARTICLE_OUTCOME, "UTF-16 with a BOM",
        _encoding("utf-16", "Crème brûlée"))
    add("enc/utf16le-no-bom.txt", FRENCH.encode("utf-16-le"), ARTICLE_OUTCOME, "UTF-16-LE without a BOM",
        _encoding("utf-16-le", "Crème brûlée"))
    add("enc/utf16be-no-bom.txt", FRENCH.encode("utf-16-be"), ARTICLE_OUTCOME, "UTF-16-BE without a BOM",
        _encoding("utf-16-be", "Crème brûlée"))
    add("enc/latin1.txt", FRENCH.encode("latin-1"), ARTICLE_OUTCOME,
        "Latin-1 (read as cp1252, its superset for printable text)", _encoding("cp1252", "Crème brûlée à la carte"))
    add("enc/cp1252.txt", ("Prices rise again\n\n“Smart quotes” — and the euro: 5 € per ticket, the café’s owner said. "
                           + ARTICLE).encode("cp1252"), ARTICLE_OUTCOME, "cp1252 punctuation and the euro sign",
        _encoding("cp1252", "“Smart quotes” — and the euro: 5 €"))
    add("enc/utf8-bom.txt", b"\xef\xbb\xbf" + FRENCH.encode(), ARTICLE_OUTCOME, "UTF-8 with a BOM",
        _encoding("utf-8", "Crème brûlée"))
    # --- binary in a .txt --------------------------------------------------------------------------------
    add("binary/image.txt", _png(), "binary", "a PNG image named .txt", _reason_mentions("PNG"))
    add("binary/archive.txt", gzip.compress(ARTICLE.encode() * 20), "binary", "a gzip stream named .txt",
        _reason_mentions("gzip"))
    add("binary/nul-heavy.txt", b"\x00\x01\x02\x03" * 2000 + ARTICLE.encode(), "binary",
        "mostly control bytes without a known signature")
    # --- empty and junk ----------------------------------------------------------------------------------
    add("empty/zero-bytes.txt", b"", "empty", "a 0-byte file")
    add("empty/whitespace.txt", " \n\t\r\n   \n\x0b\x0c\n", "empty", "whitespace only")
    add("empty/whitespace-utf16.txt", " \n \n".encode("utf-16"), "empty", "whitespace only, in UTF-16")
    add("empty/invisible-only.txt", "\u200b\u00a0\n\ufeff\u2060 \u200d\n", "empty",
        "only zero-width and non-breaking spaces", _reason_mentions("no visible text"))
    add("junk/boilerplate-only.txt", BOILERPLATE_ONLY, "nothing_left",
        "only lines the generic rule pack removes", _reason_mentions("boilerplate"))
    add("junk/empty-page.html", "<html><head><script>var a = 1;</script></head><body> </body></html>",
        "extraction_failed", "an HTML page without any text")
    add("junk/title-and-scripts.html", "<html><head><title>x</title></head><body><script>var a = 1;</script>"
        "</body></html>", "extraction_failed", "a page whose only text is its <title> (not body text)")
    add("junk/app-shell.html", "<html><head><title>Examplenews</title></head><body><noscript>You need to enable "
        "JavaScript to run this app.</noscript><div id=root></div></body></html>", "nothing_left",
        "an app shell: its only text asks for JavaScript")
    add("junk/notes.docx", b"PK\x03\x04 not really a docx", "unsupported", "a file type the readers do not know")
    # --- size --------------------------------------------------------------------------------------------
    big = root / "size/huge-article.txt"
    big.parent.mkdir(parents=True, exist_ok=True)
    write_big_article(big, big_bytes)
    cases.append(Case("size/huge-article.txt", "too_large", why=f"a {big_bytes >> 20} MiB article, over max_doc_mb",
                      check=_reason_mentions("limit")))
    line = ("word " * (long_line_bytes // 5 + 1))[:long_line_bytes]
    add("size/one-long-line.txt", "A short title\n\n" + line + "\n", ARTICLE_OUTCOME,
        f"one line of {long_line_bytes >> 20} MiB (under the limit)")
    # --- characters and line endings ---------------------------------------------------------------------
    add("chars/nul-bytes.txt", ARTICLE.replace("the budget", "the\x00budget").replace("roads", "roads\x00\x00"),
        ARTICLE_OUTCOME, "a few NUL bytes in the text: control characters are removed", _no_nul)
    add("chars/crlf.txt", ARTICLE.replace("\n", "\r\n"), ARTICLE_OUTCOME, "CRLF line endings", _no_cr)
    add("chars/cr.txt", ARTICLE.replace("\n", "\r"), ARTICLE_OUTCOME, "old-Mac CR line endings", _no_cr)
    add("chars/pasted-html.txt",
        "<!DOCTYPE html><html><head><title>Council approves the new budget</title></head><body>"
        "<nav>Home | News | Sport</nav><article><h1>Council approves the new budget</h1>"
        "<p>The city council approved the budget on Tuesday after a long debate about roads and schools, "
        "and the mayor called the vote a step forward for the whole city.</p>"
        "<p>The opposition promised to keep asking questions about the costs of the new roads.</p>"
        "</article></body></html>", ARTICLE_OUTCOME, "HTML pasted into a .txt is extracted", _extracted)
    add("chars/pasted-html-fragment.txt",
        "<p>Council approves the new budget</p>\n<p>The city council approved the budget on Tuesday after a long "
        "debate about roads and schools, and the mayor called the vote a step forward.</p>\n"
        "<p>The opposition promised to keep asking questions about the <em>costs</em> of the new roads.</p>\n",
        ARTICLE_OUTCOME, "an HTML fragment (no <html>) pasted into a .txt is extracted too", _extracted)
    # --- names -------------------------------------------------------------------------------------------
    add("names/name with spaces.txt", ARTICLE, ARTICLE_OUTCOME, "spaces in the file name")
    add("names/naïve – ünïcode ✓ 記事.txt", ARTICLE, ARTICLE_OUTCOME, "non-ASCII file name")
    add("names/new\nline.txt", ARTICLE, ARTICLE_OUTCOME, "a newline in the file name")
    add("names/brackets [1] *star?.txt", ARTICLE, ARTICLE_OUTCOME, "glob characters in the file name")
    raw_name = os.fsdecode(b"names/latin1-\xe9t\xe9.txt")  # bytes that are not UTF-8: surrogates in Python
    (root / raw_name).write_text(ARTICLE)
    cases.append(Case(printable_name(raw_name), ARTICLE_OUTCOME, why="a file name that is not valid UTF-8"))
    add("names/.hidden.txt", ARTICLE, None, "hidden files are skipped")  # expected absent; see hidden_cases
    cases.pop()  # not an input at all
    # --- discovery hazards -------------------------------------------------------------------------------
    (root / "loop").mkdir()
    add("loop/inside.txt", ARTICLE, ARTICLE_OUTCOME, "a file next to a symlink loop")
    (root / "loop" / "parent").symlink_to("..", target_is_directory=True)  # folder symlink to its parent
    (root / "unreadable").mkdir()
    locked = add("unreadable/chmod-000.txt", ARTICLE, "article" if RUNNING_AS_ROOT else "unreadable",
                 "chmod 000: unreadable unless running as root")
    locked.chmod(0)
    os.mkfifo(root / "unreadable" / "named-pipe.txt")
    cases.append(Case("unreadable/named-pipe.txt", "unreadable", why="a FIFO: opening it must not block",
                      check=_reason_mentions("FIFO")))
    (root / "unreadable" / "dangling.txt").symlink_to(root / "unreadable" / "no-such-file")
    cases.append(Case("unreadable/dangling.txt", "unreadable", why="a symlink to nothing (fails even as root)"))
    # --- JSONL -------------------------------------------------------------------------------------------
    lines: list[tuple[bytes, str | None, str]] = [  # (line, outcome, why); ids are read back below
        (json.dumps({"id": "good-1", "text": ARTICLE, "url": "https://www.example.org/a"}).encode(),
         ARTICLE_OUTCOME, "a good record"),
        (json.dumps({"id": "good-2", "html": "<p>" + ARTICLE.replace("\n\n", "</p><p>") + "</p>",
                     "source": "wire"}).encode(), ARTICLE_OUTCOME, "a good HTML record"),
        (b'{"id": "broken", "text": "an unterminated string', "malformed_record", "a malformed line"),
        (json.dumps({"id": "no-text", "title": "A title but no body"}).encode(), "missing_text", "no text or html"),
        (json.dumps({"id": "blank-text", "text": "   \n "}).encode(), "missing_text", "whitespace-only text"),
        (json.dumps({"id": "good-1", "text": ARTICLE}).encode(), "duplicate_id", "a duplicate record id"),
        (b"", None, "a blank line is not a record"),
        (json.dumps(["a", "list"]).encode(), "malformed_record", "JSON that is not an object"),
        (json.dumps({"id": "lone-surrogate", "text": "Half a pair \udcff here.\n\n" + ARTICLE,
                     "source": "src\udcffname"}).encode(), ARTICLE_OUTCOME,
         "lone surrogate escapes: replaced by U+FFFD (they cannot be written as UTF-8)"),
        (b'{"id": "cp1252-bytes", "text": "Caf\xe9 \x93quoted\x94 \\n\\n' + ARTICLE.encode().replace(b"\n", b"\\n")
         + b'"}', ARTICLE_OUTCOME, "invalid UTF-8 bytes inside a record: read as cp1252"),
        (json.dumps({"id": 12345, "text": ARTICLE}).encode(), ARTICLE_OUTCOME, "a numeric id"),
        (json.dumps({"text": ARTICLE}).encode(), ARTICLE_OUTCOME, "no id: path:line"),
        (json.dumps({"id": "good-3", "text": ARTICLE}).encode() + b"\r", ARTICLE_OUTCOME, "a CRLF-terminated line"),
    ]
    body = b"\xef\xbb\xbf" + b"\n".join(data for data, _, _ in lines) + b"\n"  # a UTF-8 BOM on line 1
    (root / "feed").mkdir()
    (root / "feed" / "records.jsonl").write_bytes(body)
    for no, (data, outcome, why) in enumerate(lines, start=1):
        if outcome is not None:
            record_id = _record_id(data)
            cases.append(Case("feed/records.jsonl", outcome, line_no=no, why=why,
                              record_id=str(record_id) if record_id is not None else f"feed/records.jsonl:{no}"))
    good = b"".join(json.dumps({"id": f"gz-{i}", "text": ARTICLE}).encode() + b"\n" for i in range(50))
    (root / "feed" / "truncated.jsonl.gz").write_bytes(gzip.compress(good)[:-30])
    # Records read before the damage are kept; the damage is one `unreadable` reject on the next line.
    with gzip.open(root / "feed" / "truncated.jsonl.gz", "rb") as handle:
        readable = 0
        try:
            for _ in handle:
                readable += 1
        except (EOFError, OSError):
            pass
    for no in range(1, readable + 1):
        cases.append(Case("feed/truncated.jsonl.gz", ARTICLE_OUTCOME, line_no=no, why="before the damage",
                          record_id=f"gz-{no - 1}"))
    cases.append(Case("feed/truncated.jsonl.gz", "corrupt", line_no=readable + 1, why="a truncated gzip stream",
                      record_id=f"feed/truncated.jsonl.gz:{readable + 1}"))
    return cases


def _record_id(line: bytes) -> object:
    try:
        record = json.loads(line.decode("utf-8", errors="replace"))
    except ValueError:
        return None
    return record.get("id") if isinstance(record, dict) else None


def hidden_relpaths() -> list[str]:
    """Inputs that must not appear in the output at all."""
    return ["names/.hidden.txt"]


# -- a large corpus of ordinary articles (crash-safety and concurrency tests) ----------------------------

_VOCABULARY = (
    "council budget school road mayor vote debate city river bridge market price report court judge police water "
    "energy plan project health hospital doctor nurse teacher student farm harvest weather storm summer winter "
    "station train bus ticket library museum festival music team match season coach company worker union wage tax "
    "law minister region border election office street park tree")
_WORDS = tuple(_VOCABULARY.split())
_TEMPLATE = ("Share this article", "Subscribe to our newsletter", "Disqus content widget", "Read more")


def write_article_corpus(root: Path, n_articles: int, n_sources: int = 6, kb: float = 3.0,
                         seed: int = 7) -> list[Path]:
    """``n_articles`` plain-text articles of about ``kb`` KB in ``n_sources`` source folders (seeded)."""
    import random

    rng = random.Random(seed)
    paths: list[Path] = []
    for i in range(n_articles):
        source = root / f"site{i % n_sources}.example"
        source.mkdir(parents=True, exist_ok=True)
        title = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 8))).capitalize()
        paragraphs: list[str] = []
        size = 0
        while size < kb * 1000:
            sentences = [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 20))).capitalize() + "."
                         for _ in range(rng.randint(2, 5))]
            paragraphs.append(" ".join(sentences))
            size += len(paragraphs[-1])
        body = "\n\n".join([title, *paragraphs[:1], rng.choice(_TEMPLATE), *paragraphs[1:], _TEMPLATE[i % 4]])
        path = source / f"article-{i:05d}.txt"
        path.write_text(body + "\n")
        paths.append(path)
    return paths
