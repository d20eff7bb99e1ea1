"""Find input files and read them as a stream of raw documents or rejects.

Inputs are files, folders (searched recursively) or glob patterns. Supported: ``.txt`` (one article
per file), ``.html``/``.htm`` (one page per file) and ``.jsonl``/``.jsonl.gz`` (one record per line).
Reading never raises for bad content: every problem becomes a :class:`~cleaners.types.Reject`.

Names are always valid text: bytes of a local file name that are not UTF-8 (which Python decodes to
surrogates U+DC80..U+DCFF) are shown as the private-use characters U+10FE80..U+10FEFF, one per byte,
so the name can be written to Parquet and sent to Prefect; :func:`open_input` maps them back.
"""

from __future__ import annotations

import errno
import glob
import gzip
import json
import logging
import os
import re
import stat
import sys
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import urlsplit

import fsspec
from dateutil import parser as date_parser
from tld import is_tld

from cleaners.decode import decode_bytes, decode_mostly_utf8
from cleaners.extract import extract_html, looks_like_html
from cleaners.types import RawDocument, Reject, RejectReason

_LOG = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt",)
HTML_SUFFIXES = (".html", ".htm")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + HTML_SUFFIXES + JSONL_SUFFIXES
UNKNOWN_SOURCE = "unknown"
# Documents larger than this are rejected as too_large rather than read into memory.
DEFAULT_MAX_DOC_BYTES = 16 * 1024 * 1024
# Non-UTF-8 bytes of file names: surrogateescape's U+DC80..U+DCFF <-> private use U+10FE80..U+10FEFF.
_NAME_BYTE_SHIFT = 0x10FE00 - 0xDC00
_TO_PRINTABLE_NAME = {c: c + _NAME_BYTE_SHIFT for c in range(0xDC80, 0xDD00)}
_TO_OS_NAME = {c + _NAME_BYTE_SHIFT: c for c in range(0xDC80, 0xDD00)}
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# HTML pasted into a text file is often a fragment ("<p>...</p><p>...</p>"), not a whole page: it opens
# with a common tag and closes at least one within its first 4 KB.
_FRAGMENT_TAGS = "p|div|article|section|main|header|h[1-6]|table|ul|ol|li|blockquote|figure|span|a|em|strong|b|i"
_HTML_FRAGMENT_START = re.compile(rf"\A\s*<(?:{_FRAGMENT_TAGS})(?:\s[^<>]*)?>", re.IGNORECASE)
_HTML_CLOSING_TAG = re.compile(rf"</(?:{_FRAGMENT_TAGS})\s*>", re.IGNORECASE)


class InputError(ValueError):
    """An input argument that names nothing readable; the message says which and what to do."""


@dataclass(frozen=True, slots=True)
class InputFile:
    """One input file and where it sits relative to the input root it was found under."""

    path: str       # absolute local path, or an fsspec URL (s3://...): the file's identity in the ledger
    relpath: str    # relative to the input root, '/'-separated: the input_id of a text/html file
    source: str     # folder under the root, else UNKNOWN_SOURCE
    size: int
    mtime_ns: int = 0

    @property
    def kind(self) -> str:
        name = self.path.lower()
        if name.endswith(JSONL_SUFFIXES):
            return "jsonl"
        if name.endswith(HTML_SUFFIXES):
            return "html"
        if name.endswith(TEXT_SUFFIXES):
            return "text"
        return "unsupported"


# A folder name that reads as a host name ("420intel.com", "news.example.co.uk"; not "2026-11-26" or "v1.2"):
# labels of letters, digits and hyphens whose last one is a top-level domain (tld's copy of the Public Suffix
# List, offline), so "snapshots.old" or "scrape.bak" is a folder name, not a host.
_HOST_NAME = re.compile(r"(?:[a-z0-9_-]+\.)+[a-z][a-z0-9-]*", re.IGNORECASE)
_RESERVED_TLDS = frozenset({"example", "test", "invalid", "localhost"})  # RFC 2606: for examples and tests


def is_host_name(name: str) -> bool:
    """Whether a folder or declared source name reads as a host name ending in a real top-level domain."""
    if not _HOST_NAME.fullmatch(name):
        return False
    top = name.rsplit(".", 1)[-1].lower()
    return top in _RESERVED_TLDS or bool(is_tld(top))


def normalized_source(name: str) -> str:
    """A source name as every reader writes it: trimmed; a host name lower-cased and without "www." (folder
    ``www.Example.com``, a record's ``"source": "Example.com"`` and its URL's host are one source)."""
    name = name.strip()
    return name.lower().removeprefix("www.") if is_host_name(name) else name


# A folder named like a date or a number ("2026-11-26", "2026", "11"): the dated layers of a scrape under a site.
_DATED = re.compile(r"[0-9][0-9._-]*")


def _anchored(rel: str, root_parts: Sequence[str]) -> tuple[str, str]:
    """(input path, source) of the file at ``rel`` (``/``-separated) under a root whose path has ``root_parts``.

    The source is the first folder on the way down whose name is a host name (``420intel.com/2026-11-26/x.txt``:
    ``420intel.com``, so a site's pack and its learned template apply whatever the dated folders below it), else
    the whole folder path (``feeds/wire/x.txt``: ``feeds/wire``), else :data:`UNKNOWN_SOURCE` for a file in the
    root itself. When the root is a host-named folder, or a dated folder (digits and separators) inside one (a run
    given ``raw/420intel.com`` or ``raw/420intel.com/2026-11-26``, or one file there), that folder is the source
    and the input path starts at it, as a run over ``raw`` writes it: the same file gets the same ``input_id`` and
    ``doc_id`` either way. Other folders above the root are not looked at (a home folder named ``first.last``)."""
    for k in range(len(root_parts) - 1, -1, -1):
        if is_host_name(root_parts[k]):
            return "/".join([*root_parts[k:], rel]), normalized_source(root_parts[k])
        if not _DATED.fullmatch(root_parts[k]):
            break
    parts = PurePosixPath(rel).parts
    for part in parts[:-1]:
        if is_host_name(part):
            return rel, normalized_source(part)
    return rel, UNKNOWN_SOURCE if len(parts) < 2 else "/".join(parts[:-1])


def host_folder_of(path: str) -> str | None:
    """The nearest folder above a file whose name is a host name (for a file given on its own)."""
    return next((normalized_source(part) for part in reversed(PurePosixPath(path).parent.parts)
                 if is_host_name(part)), None)


def printable_name(path: str) -> str:
    """A local path as valid text: non-UTF-8 bytes of the name become private-use characters."""
    return path.translate(_TO_PRINTABLE_NAME)


def os_name(path: str) -> str:
    """The inverse of :func:`printable_name`: the path to give to the operating system."""
    return path.translate(_TO_OS_NAME)


def _make(path: str, root: str) -> InputFile:
    rel = printable_name(os.path.relpath(path, root).replace(os.sep, "/"))
    try:
        info = os.stat(path)
        size, mtime_ns = info.st_size, info.st_mtime_ns
    except OSError:  # unreadable or vanished: read_file turns it into a reject
        size, mtime_ns = 0, 0
    root_parts = PurePosixPath(printable_name(os.path.abspath(root)).replace(os.sep, "/")).parts[1:]
    rel, source = _anchored(rel, root_parts)
    return InputFile(path=printable_name(os.path.abspath(path)), relpath=rel, source=source, size=size,
                     mtime_ns=mtime_ns)


def _discover_remote(arg: str) -> list[InputFile]:
    """Inputs on object storage or any other fsspec filesystem (``s3://bucket/prefix``)."""
    try:
        fs, path = fsspec.core.url_to_fs(arg)
    except (ValueError, ImportError, OSError) as exc:  # an unknown protocol, its package not installed
        raise InputError(f"input {arg!r}: {exc} (fsspec reads this protocol through a package of its own: s3fs "
                         "for s3://, gcsfs for gs://, adlfs for az://; install it into the same environment)") from exc
    if any(ch in path for ch in "*?["):
        # A matched folder is read as a folder input is (as a local glob does), each object once: only the
        # outermost matched folders are listed ("raw/**" matches every folder under raw/; each is in raw/'s listing).
        globbed = fs.glob(path, detail=True)
        folders = sorted(match.rstrip("/") for match, info in globbed.items() if info.get("type") == "directory")
        outermost: list[str] = []
        for folder in folders:  # sorted: a folder comes after the folders above it
            if not any(folder.startswith(top + "/") for top in outermost):
                outermost.append(folder)
        matches = sorted({match for match, info in globbed.items() if info.get("type") != "directory"}
                         | {found for folder in outermost for found in fs.find(folder)})
        root = path.split("*")[0].split("?")[0].split("[")[0].rsplit("/", 1)[0]
    elif fs.isdir(path):
        matches, root = fs.find(path), path.rstrip("/")
    elif fs.isfile(path):
        matches, root = [path], path.rsplit("/", 1)[0]
    else:
        raise InputError(f"input {arg!r}: no such object or prefix; check the URL and credentials")
    if not matches:
        raise InputError(f"input {arg!r}: matches no object")
    files = []
    for match in sorted(matches):
        info = fs.info(match)
        rel = match[len(root):].lstrip("/") if match.startswith(root) else match.rsplit("/", 1)[-1]
        if any(part.startswith(".") for part in rel.split("/")):  # hidden files and folders, as a local walk skips
            continue
        modified = info.get("LastModified") or info.get("mtime") or 0
        mtime_ns = int(modified.timestamp() * 1e9) if isinstance(modified, datetime) else int(float(modified) * 1e9)
        rel, source = _anchored(rel, tuple(part for part in root.split("/") if part))
        files.append(InputFile(path=fs.unstrip_protocol(match), relpath=rel, source=source,
                               size=int(info.get("size") or 0), mtime_ns=mtime_ns))
    return files


def open_input(path: str) -> BinaryIO:
    """Open a local path or an fsspec URL for reading bytes.

    Local paths must be regular files: a FIFO, device or folder raises :class:`OSError` instead of
    blocking or reading forever (the open is non-blocking until the type is checked).
    """
    if "://" in path:
        return fsspec.open(path, "rb").open()
    fd = os.open(os_name(path), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a folder" if stat.S_ISDIR(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
                    else "a socket" if stat.S_ISSOCK(mode) else "a device")
            raise OSError(errno.EINVAL, f"not a regular file but {kind}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _walk(root: str) -> Iterator[str]:
    """Every non-hidden file under ``root``, sorted, without following symlinked folders (no loops). A folder
    that cannot be listed (permissions) is yielded itself: the reader turns it into an `unreadable` reject, so
    its files are not silently missing."""
    unlisted: list[str] = []
    for folder, dirs, files in os.walk(root, followlinks=False, onerror=lambda exc: unlisted.append(exc.filename)):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        _warn_symlinked_folders([os.path.join(folder, d) for d in dirs if os.path.islink(os.path.join(folder, d))])
        for name in sorted(files):
            if not name.startswith("."):
                yield os.path.join(folder, name)
    yield from (str(folder) for folder in unlisted if folder)


def _warn_symlinked_folders(folders: Sequence[str]) -> None:
    """Symlinked folders are not followed (a link to a parent folder loops); the run says which it left out."""
    for folder in folders:
        _LOG.warning("%r is a symlinked folder: not followed, its files are not read. Give its target as an input "
                     "to read them", printable_name(folder))


def _outermost(found: dict[str, InputFile], made: InputFile) -> None:
    """Record ``made`` unless ``found`` has its path from an outer root. Inputs that overlap (a folder and a file
    or glob inside it) reach a file from several roots: the outermost one names its source and ``input_id``
    (the longest path below the root), whichever order the inputs come in, so its ``doc_id`` does not depend
    on the order of the command line."""
    known = found.get(made.path)
    if known is None or len(made.relpath) > len(known.relpath):
        found[made.path] = made


def discover(inputs: Sequence[str]) -> list[InputFile]:
    """Resolve input arguments to files. Raises :class:`InputError` for an argument that matches nothing."""
    found: dict[str, InputFile] = {}
    for arg in inputs:
        if arg.startswith(("file://", "local://")):  # a local path written as a URL (file:///srv/raw)
            arg = arg.split("://", 1)[1]
        if "://" in arg:
            for f in _discover_remote(arg):
                _outermost(found, f)
        elif any(ch in arg for ch in "*?[") and not os.path.lexists(arg):  # "a [1].txt" is a name
            root = _glob_root(arg)
            matches = sorted(glob.glob(arg, recursive=True))
            # Every match but folders, as a folder input would list them: a FIFO or a dangling symlink
            # becomes an `unreadable` reject instead of silently vanishing.
            files = [m for m in matches if not os.path.isdir(m) and not _under_symlinked_folder(m, root)]
            # A matched folder is read as a folder input is ("raw/*" takes raw/420intel.com/ and what is in it):
            # not a symlinked one, and once (not again for each matched folder above it, as "raw/**" matches).
            folders = [m for m in matches if os.path.isdir(m) and not os.path.islink(m)
                       and not _under_symlinked_folder(m, root)]
            _warn_symlinked_folders([m for m in matches if os.path.isdir(m) and os.path.islink(m)
                                     and not _under_symlinked_folder(m, root)])
            matched = {os.path.normpath(m) for m in folders}
            outermost = [m for m in folders if not any(str(parent) in matched
                                                       for parent in Path(os.path.normpath(m)).parents)]
            files += [path for m in outermost for path in _walk(m)]
            if not files:
                raise InputError(f"input {arg!r}: the pattern matches no file")
            for path in files:
                made = _make(path, root)
                _outermost(found, made)
        elif os.path.isdir(arg):
            for path in _walk(arg):
                made = _make(path, arg)
                _outermost(found, made)
        elif os.path.isfile(arg):
            made = _make(arg, os.path.dirname(arg) or ".")
            _outermost(found, made)
        elif os.path.lexists(arg):
            raise InputError(f"input {arg!r}: not a regular file or folder (a broken symlink?)")
        else:
            raise InputError(f"input {arg!r}: no such file or folder; check the path")
    return _without_symlinked_copies(sorted(found.values(), key=lambda f: (f.source, f.relpath, f.path)))


def _without_symlinked_copies(files: list[InputFile]) -> list[InputFile]:
    """The files without symlinks to a file the run already reads (``latest.txt`` -> ``2026-11-26.txt`` beside it):
    one file, read once, under its own name; two links to one file outside the inputs, under the first. Read twice,
    its articles were there twice under two ``doc_id``s. Only files that are symlinks are checked (lstat each)."""
    links = {f.path for f in files if "://" not in f.path and os.path.islink(os_name(f.path))}
    if not links:
        return files

    def identity(f: InputFile) -> tuple[int, int] | None:
        try:
            info = os.stat(os_name(f.path))
        except OSError:
            return None  # dangling: the reader makes it an `unreadable` reject
        return info.st_dev, info.st_ino

    named: dict[tuple[int, int], str] = {}
    sizes = {f.size for f in files if f.path in links}  # only a file of a link's size can be its target
    for f in files:
        if f.path not in links and f.size in sizes and (key := identity(f)) is not None:
            named.setdefault(key, f.path)
    kept: list[InputFile] = []
    for f in files:
        key = identity(f) if f.path in links else None
        if key is not None and key in named:
            _LOG.warning("%r is a symlink to %r, which this run reads: read once, under that name", f.path, named[key])
            continue
        if key is not None:
            named[key] = f.path
        kept.append(f)
    return kept


def _under_symlinked_folder(path: str, root: str) -> bool:
    """Whether a glob match lies below a symlinked folder under ``root``: ``**`` would follow those
    (a link to a parent folder repeats every file dozens of times) while folder inputs do not."""
    rel = os.path.relpath(os.path.dirname(path), root)
    if rel == "." or rel.startswith(".."):
        return False
    current = root
    for part in rel.split(os.sep):
        current = os.path.join(current, part)
        if os.path.islink(current):
            return True
    return False


def _glob_root(pattern: str) -> str:
    """The folder part of a glob before its first wildcard: sources are relative to it."""
    parts = Path(pattern).parts
    fixed = [p for p in parts[: next(i for i, p in enumerate(parts) if any(c in p for c in "*?["))]]
    return str(Path(*fixed)) if fixed else "."


def host_of(url: str | None) -> str | None:
    """The URL's host without ``www.``; None when it has none, or when it cannot be read ("http://[::1/a"): an
    optional field's bad value does not cost the record (its source then comes from its folder)."""
    if not url:
        return None
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return None
    return host.removeprefix("www.") or None


# Epoch numbers above this are milliseconds (1e11 seconds is the year 5138).
_EPOCH_MILLISECONDS_FROM = 1e11
# Epoch seconds or milliseconds written as text ("1714557600", "1714557600123.5"): 10 or 13 digits. Not an ISO
# basic date ("20240501"; read by fromisoformat first), nor a compact date and hour or minute ("2024050112",
# "202405011230"): 12 digits are never read, and 10 that spell a date and hour are ambiguous (left null).
_EPOCH_TEXT = re.compile(r"-?(?:[0-9]{10}|[0-9]{13})(?:\.[0-9]+)?")
_COMPACT_DATE_HOUR = re.compile(r"(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])(?:[01][0-9]|2[0-3])")


# An English month name or its abbreviation: a date written with one is unambiguous ("May 1, 2025", "1 May 2025").
_MONTH_NAME = re.compile(r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?(?![a-z])", re.IGNORECASE)
_DEFAULTS = (datetime(2001, 1, 1), datetime(2002, 2, 2))  # two fillers: a part missing from the text shows


def _datetime_as_written(value: object) -> datetime | None:
    """An ISO 8601 text (in its own offset, naive when it has none), an RFC 2822 date as feeds write it ("Tue, 05
    May 2024 10:00:00 GMT"), a date with an English month name and day and year ("May 1, 2025", "1 May 2025
    14:30"), or a Unix epoch number, or its digits as text (seconds, or milliseconds when larger than 1e11; UTC).
    None for anything else: out of range, incomplete ("May 2025"), or all-numeric and ambiguous ("01/02/2025":
    January or February?)."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value / 1000 if abs(value) > _EPOCH_MILLISECONDS_FROM else value, UTC)
        if not isinstance(value, str) or not value.strip():
            return None
        value = value.strip()
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        if _EPOCH_TEXT.fullmatch(value) and not _COMPACT_DATE_HOUR.fullmatch(value):
            number = float(value)
            return datetime.fromtimestamp(number / 1000 if abs(number) > _EPOCH_MILLISECONDS_FROM else number, UTC)
        try:
            return parsedate_to_datetime(value)
        except (ValueError, TypeError, IndexError):
            pass
        if _MONTH_NAME.search(value) and len(value) <= 64:
            with warnings.catch_warnings():
                # A time-zone name dateutil does not know ("5pm PST") would be dropped, the time read as UTC.
                warnings.simplefilter("error", date_parser.UnknownTimezoneWarning)
                first, second = (date_parser.parse(value, default=default) for default in _DEFAULTS)
            if first.date() == second.date():  # day, month and year all written
                return first
    except (ValueError, OverflowError, OSError, date_parser.ParserError, date_parser.UnknownTimezoneWarning):
        pass
    return None


def _given(value: object) -> bool:
    """Whether a record field holds a value (not absent, null or blank)."""
    return not (value is None or (isinstance(value, str) and not value.strip()))


def _parse_datetime(value: object) -> datetime | None:
    """The value as an aware UTC datetime (a time without an offset is read as UTC)."""
    parsed = _datetime_as_written(value)
    try:
        return None if parsed is None else (parsed.replace(tzinfo=UTC) if parsed.tzinfo is None
                                            else parsed.astimezone(UTC))
    except OverflowError:  # out of range once in UTC ("0001-01-01T00:00:00+01:00")
        return None


def _parse_date(value: object) -> date | None:
    """The calendar date the value names, in its own offset ("2024-05-01T22:30:00-05:00" is May 1, not the
    UTC day it falls on)."""
    parsed = _datetime_as_written(value)
    return parsed.date() if parsed else None


# A file is not read again while it is unchanged: a larger limit needs --reprocess.
_TOO_LARGE_HINT = "; to read it, raise --max-doc-mb and run again with --reprocess"


def _reject(f: InputFile, code: RejectReason, reason: str, *, input_id: str | None = None,
            line_no: int | None = None, source: str | None = None, n_bytes: int = 0) -> Reject:
    return Reject(
        input_id=input_id or f.relpath,
        source=source or f.source,
        input_file=f.path,
        reason_code=code,
        reason=reason,
        line_no=line_no,
        n_bytes=n_bytes,
    )


def _looks_like_html_fragment(text: str) -> bool:
    head = text[:4096]
    return bool(_HTML_FRAGMENT_START.match(head)) and _HTML_CLOSING_TAG.search(head) is not None


def _unreadable(f: InputFile, exc: OSError) -> Reject:
    hint = {errno.EACCES: "; check its permissions", errno.EPERM: "; check its permissions",
            errno.ENOENT: "; it vanished, or is a symlink to nothing", errno.ELOOP: "; a symlink loop"}
    return _reject(f, RejectReason.UNREADABLE,
                   f"cannot read the file: {exc.strerror or exc}{hint.get(exc.errno or 0, '')}; "
                   "the next run tries it again", n_bytes=f.size)


def _text_or_html_document(
    f: InputFile, text: str, *, is_html: bool, input_id: str, source: str, n_bytes: int, encoding: str,
    url: str | None = None, title: str | None = None, author: str | None = None,
    published: date | None = None, fetched_at: datetime | None = None, line_no: int | None = None,
    unread_fields: tuple[str, ...] = (),
) -> RawDocument | Reject:
    extractor = "none"
    title_from_page = False
    if is_html or looks_like_html(text) or _looks_like_html_fragment(text):
        try:
            extracted = extract_html(text, url)
        except Exception as exc:  # beautifulsoup4's fallback failed too (RecursionError on pathological nesting)
            # The page's content, not the file system: an `unreadable` reject (the reader's catch-all) was tried
            # again on every run; this one is tried again once the file changes.
            return _reject(f, RejectReason.EXTRACTION_FAILED, f"HTML that neither trafilatura nor beautifulsoup4 "
                           f"could parse: {type(exc).__name__}: {str(exc)[:200]}", input_id=input_id,
                           line_no=line_no, source=source, n_bytes=n_bytes)
        if extracted is None:
            return _reject(f, RejectReason.EXTRACTION_FAILED, "HTML from which neither trafilatura nor "
                           "beautifulsoup4 extracted any text", input_id=input_id, line_no=line_no,
                           source=source, n_bytes=n_bytes)
        text, extractor = extracted.text, extracted.extractor
        title_from_page = title is None and extracted.title is not None
        title = title or extracted.title
        author = author or extracted.author
        published = published or extracted.published
    if not text.strip():
        return _reject(f, RejectReason.EMPTY, "no text (empty or whitespace only)", input_id=input_id,
                       line_no=line_no, source=source, n_bytes=n_bytes)
    return RawDocument(
        input_id=input_id, source=source, input_file=f.path, text=text, n_bytes=n_bytes, encoding=encoding,
        url=url, title=title, author=author, published=published, fetched_at=fetched_at,
        extractor=extractor, line_no=line_no, title_from_page=title_from_page,
        unread_fields=tuple(key for key in unread_fields if not (key == "published" and published)),
    )


def read_file(f: InputFile, max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES) -> Iterator[RawDocument | Reject]:
    """Stream the documents of one input file; problems become rejects, never exceptions: an error no reader
    step expects (a corrupt compressed stream, a library's own error) ends the file with an `unreadable` reject
    that names it, and the run goes on with the other files."""
    produced = 0
    try:
        for item in _read_file(f, max_doc_bytes):
            produced += 1
            yield item
    except Exception as exc:
        where = f" after {produced} inputs" if produced else ""
        yield _reject(f, RejectReason.UNREADABLE, f"reading failed{where}: {type(exc).__name__}: {str(exc)[:300]}",
                      input_id=f"{f.relpath}:error" if produced else None, n_bytes=0 if produced else f.size)


def _read_file(f: InputFile, max_doc_bytes: int) -> Iterator[RawDocument | Reject]:
    if "://" not in f.path and os.path.isdir(os_name(f.path)):  # a folder that could not be listed (_walk)
        try:
            os.listdir(os_name(f.path))
            detail = "it could not be listed during discovery"
        except OSError as exc:
            detail = exc.strerror or str(exc)
        yield _reject(f, RejectReason.UNREADABLE, f"a folder whose files could not be listed ({detail}); none of "
                      "them was read. Fix its permissions and run again: it is tried on every run")
        return
    if f.kind == "unsupported":
        yield _reject(f, RejectReason.UNSUPPORTED, f"unsupported file type; expected one of {SUPPORTED_SUFFIXES}",
                      n_bytes=f.size)
        return
    if f.kind == "jsonl":
        yield from _read_jsonl(f, max_doc_bytes)
        return
    try:
        if f.size > max_doc_bytes:
            yield _reject(f, RejectReason.TOO_LARGE, f"{f.size} bytes is over the {max_doc_bytes}-byte document "
                          f"limit (max_doc_bytes){_TOO_LARGE_HINT}", n_bytes=f.size)
            return
        with open_input(f.path) as handle:
            data = handle.read(max_doc_bytes + 1)
        if len(data) > max_doc_bytes:  # grew since discovery
            yield _reject(f, RejectReason.TOO_LARGE, f"over the {max_doc_bytes}-byte document limit "
                          f"(max_doc_bytes){_TOO_LARGE_HINT}", n_bytes=len(data))
            return
    except OSError as exc:
        yield _unreadable(f, exc)
        return
    if not data.strip():
        yield _reject(f, RejectReason.EMPTY, "no text (empty or whitespace only)", n_bytes=len(data))
        return
    decoded = decode_bytes(data)
    if decoded.text is None:
        yield _reject(f, decoded.failure or RejectReason.UNDECODABLE, decoded.detail, n_bytes=len(data))
        return
    yield _text_or_html_document(
        f, decoded.text, is_html=f.kind == "html", input_id=f.relpath, source=f.source,
        n_bytes=len(data), encoding=decoded.encoding or "utf-8",
    )


def _read_jsonl(f: InputFile, max_doc_bytes: int) -> Iterator[RawDocument | Reject]:
    seen_ids = _SeenIds(f"{f.relpath}:")
    try:
        raw_handle = open_input(f.path)
        handle = gzip.open(raw_handle, "rb") if f.path.lower().endswith(".gz") else raw_handle  # noqa: SIM115
    except OSError as exc:
        yield _unreadable(f, exc)
        return
    line_no = 0
    produced = 0  # records and rejects yielded: a file with none is itself a reject
    try:
        with raw_handle, handle:
            while True:
                try:
                    raw = handle.readline(max_doc_bytes + 1)
                except (OSError, EOFError, zlib.error) as exc:
                    # A truncated or damaged gzip stream is the file's content: reading it again gives the same
                    # error, so it is `corrupt` (its ledger row keeps its hash: tried again once it changes). Other
                    # errors (permissions, a network file system) are `unreadable`: tried again on every run.
                    damaged = isinstance(exc, (EOFError, zlib.error, gzip.BadGzipFile))
                    yield _reject(f, RejectReason.CORRUPT if damaged else RejectReason.UNREADABLE,
                                  f"reading line {line_no + 1} failed: {type(exc).__name__}: {str(exc)[:300]}"
                                  + ("; the rest of the file is not read (a truncated or damaged gzip file: replace "
                                     "it with a whole copy)" if damaged else ""),
                                  input_id=f"{f.relpath}:{line_no + 1}", line_no=line_no + 1,
                                  n_bytes=0 if produced else f.size)
                    return
                if not raw:
                    if not produced:
                        yield _reject(f, RejectReason.EMPTY, f"no records ({line_no} lines, all blank)"
                                      if line_no else "no records (empty file)", n_bytes=f.size)
                    return
                line_no += 1
                if not produced and _wide_encoding(raw, line_no):
                    # Split at its 0x0A bytes, such a file gave a malformed record per line and one more for its
                    # trailing NUL, none saying why. One reject says what to do.
                    yield _reject(f, RejectReason.UNDECODABLE, "a JSON Lines file in UTF-16 or UTF-32 (by its first "
                                  "bytes); JSON Lines are UTF-8: re-encode it (iconv -f UTF-16 -t UTF-8) and run "
                                  "again", n_bytes=f.size)
                    return
                if len(raw) > max_doc_bytes and not raw.endswith(b"\n"):
                    # Skip the rest of the oversize line without holding it in memory (its id is not read: the
                    # reject is known by file and line).
                    n_bytes = len(raw)
                    while raw and not raw.endswith(b"\n"):
                        raw = handle.readline(1 << 20)
                        n_bytes += len(raw)
                    yield _reject(f, RejectReason.TOO_LARGE, f"record over the {max_doc_bytes}-byte document limit"
                                  f"{_TOO_LARGE_HINT}", input_id=f"{f.relpath}:{line_no}", line_no=line_no,
                                  n_bytes=n_bytes)
                    produced += 1
                    continue
                if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark
                    raw = raw[3:]
                if not raw.strip():
                    continue
                yield _jsonl_record(f, raw, line_no, seen_ids)
                produced += 1
    except OSError as exc:
        yield _reject(f, RejectReason.UNREADABLE, f"reading failed after line {line_no}: {exc}",
                      input_id=f"{f.relpath}:{line_no}", line_no=line_no, n_bytes=0 if produced else f.size)


_WIDE_BOMS = (b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00", b"\xff\xfe", b"\xfe\xff")  # UTF-32 BE/LE, UTF-16 LE/BE


def _wide_encoding(raw: bytes, line_no: int) -> bool:
    """Whether a JSONL file's first bytes (``raw``: its first non-blank line so far, or its first line) are UTF-16
    or UTF-32: a byte-order mark, or an ASCII character (a JSON text begins with one) next to NUL bytes in the
    pattern of those encodings. NUL padding (a writer that crashed) is not taken for one: it stays a bad record."""
    if line_no == 1 and raw.startswith(_WIDE_BOMS):
        return True
    head = raw.lstrip(b"\n")[:4]
    if len(head) < 2:
        return False
    zeros = tuple(byte == 0 for byte in head)
    return zeros[:2] in ((False, True), (True, False)) and any(0 < byte < 0x80 for byte in head[:2])


def _without_lone_surrogates(value: object) -> object:
    """JSON may escape half of a surrogate pair ("\\udcff"): such a string cannot be written as UTF-8
    (to Parquet or to Prefect), so each lone surrogate becomes U+FFFD."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_lone_surrogates(v) for v in value]
    return value


def _parse_json_line(raw: bytes) -> tuple[object, str]:
    """The JSON value of one line and the encoding its bytes were read with."""
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        # Invalid bytes inside the strings of a record (a stray cp1252 quote): read as the text reader does.
        text, encoding = decode_mostly_utf8(raw), "utf-8+cp1252"
    record = json.loads(text)
    if "\\ud" in text or "\\uD" in text:  # only escapes can produce lone surrogates
        record = _without_lone_surrogates(record)
    return record, encoding


class _SeenIds:
    """The ids of one JSONL file's records read so far. A record without an id is known by its file and line
    (``prefix`` + line number): those lines are kept as bits, not strings (a file of a million records without ids
    held ~120 MB of them); an explicit id is checked against them too, as it may spell one."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.explicit: set[str] = set()
        self.unnamed_lines = bytearray()  # bit n: line n's record had no id

    def _unnamed(self, line_no: int) -> bool:
        return line_no // 8 < len(self.unnamed_lines) and bool(self.unnamed_lines[line_no // 8] >> (line_no % 8) & 1)

    def __contains__(self, input_id: str) -> bool:
        if input_id in self.explicit:
            return True
        number = input_id[len(self.prefix):] if input_id.startswith(self.prefix) else ""
        # A line number: ASCII digits without a leading zero, and short (int() refuses over 4,300 digits).
        if not (0 < len(number) <= 18 and number.isascii() and number.isdigit() and number[0] != "0"):
            return False
        return self._unnamed(int(number))

    def add(self, input_id: str, unnamed_line: int | None) -> None:
        """Record ``input_id``: the id of the record on ``unnamed_line`` when it had none (then not kept as text)."""
        if unnamed_line is None:
            self.explicit.add(input_id)
            return
        if unnamed_line // 8 >= len(self.unnamed_lines):
            self.unnamed_lines.extend(bytes(max(unnamed_line // 8 + 1 - len(self.unnamed_lines),
                                                len(self.unnamed_lines))))
        self.unnamed_lines[unnamed_line // 8] |= 1 << (unnamed_line % 8)


def _jsonl_record(f: InputFile, raw: bytes, line_no: int, seen_ids: _SeenIds) -> RawDocument | Reject:
    try:
        return _jsonl_record_of(f, raw, line_no, seen_ids)
    except Exception as exc:  # a value no step expects (an id of 5,000 digits): this record only
        return _reject(f, RejectReason.MALFORMED_RECORD, f"line {line_no} could not be read: {type(exc).__name__}: "
                       f"{str(exc)[:300]}", input_id=f"{f.relpath}:{line_no}", line_no=line_no, n_bytes=len(raw))


def _jsonl_record_of(f: InputFile, raw: bytes, line_no: int, seen_ids: _SeenIds) -> RawDocument | Reject:
    fallback_id = f"{f.relpath}:{line_no}"
    try:
        record, encoding = _parse_json_line(raw)
    except RecursionError:
        # Valid JSON, maybe, but nested deeper than Python's parser goes (~1,000 levels): no article is.
        return _reject(f, RejectReason.MALFORMED_RECORD, f"line {line_no} is nested too deeply to read (over "
                       f"{sys.getrecursionlimit()} levels of arrays or objects); write the record flat",
                       input_id=fallback_id, line_no=line_no, n_bytes=len(raw))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        # JSON strings cannot hold a raw CR: one between records means lines ended in CR alone (classic Mac OS).
        hint = ("; its records end in a carriage return alone (CR, not LF or CRLF), so they read as one line: "
                "convert the line ends to LF (tr '\\r' '\\n') and run again") \
            if isinstance(exc, json.JSONDecodeError) and exc.msg == "Extra data" and b"\r" in raw else ""
        return _reject(f, RejectReason.MALFORMED_RECORD, f"line {line_no} is not valid JSON: {exc}{hint}",
                       input_id=fallback_id, line_no=line_no, n_bytes=len(raw))
    if not isinstance(record, dict):
        return _reject(f, RejectReason.MALFORMED_RECORD, f"line {line_no} is JSON but not an object",
                       input_id=fallback_id, line_no=line_no, n_bytes=len(raw))
    record_id = record.get("id")
    if record_id is not None and (isinstance(record_id, bool) or not isinstance(record_id, str | int)):
        return _reject(f, RejectReason.MALFORMED_RECORD, f"line {line_no}: `id` must be a string or a whole number, "
                       f"not {type(record_id).__name__} {json.dumps(record_id)[:80]}; fix the record's id, or leave "
                       "it out (the record is then known by its file and line)", input_id=fallback_id,
                       line_no=line_no, n_bytes=len(raw))
    input_id = str(record_id) if record_id not in (None, "") else fallback_id
    url = record.get("url") if isinstance(record.get("url"), str) else None
    declared = record.get("source")
    source = normalized_source(declared) if isinstance(declared, str) and declared.strip() else host_of(url) or f.source
    if input_id in seen_ids:
        return _reject(f, RejectReason.DUPLICATE_ID, f"record id {input_id!r} already appeared earlier in this file",
                       input_id=input_id, line_no=line_no, source=source, n_bytes=len(raw))
    seen_ids.add(input_id, line_no if input_id == fallback_id else None)
    text, html = record.get("text"), record.get("html")
    body = text if isinstance(text, str) and text.strip() else html if isinstance(html, str) else None
    if body is None or not body.strip():
        return _reject(f, RejectReason.MISSING_TEXT, "record has no non-empty `text` or `html` field",
                       input_id=input_id, line_no=line_no, source=source, n_bytes=len(raw))
    # Each date parsed once; a value given but not read is counted (unread_fields).
    fetched_at, published = _parse_datetime(record.get("fetched_at")), _parse_date(record.get("published"))
    title = (record["title"].strip() or None) if isinstance(record.get("title"), str) else None
    author = record.get("author") if isinstance(record.get("author"), str) and record["author"].strip() else None
    return _text_or_html_document(
        f, body, is_html=body is html, input_id=input_id, source=source, n_bytes=len(raw), encoding=encoding,
        url=url, title=title, author=author, fetched_at=fetched_at, line_no=line_no, published=published,
        unread_fields=tuple(key for key, parsed in (("published", published), ("fetched_at", fetched_at))
                            if parsed is None and _given(record.get(key))),
    )
