"""Character- and whitespace-level normalization of article text.

The steps are ordered and each is a pure ``str -> str`` function. Line structure is preserved
(no line is added or removed here except by newline normalization), so line numbers reported by
the line cleaners refer to the text as returned by :func:`normalize_characters`.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import ftfy
import numpy as np
from ftfy.badness import is_bad

from cleaners import kernels

# Spaces that render like a space but are not U+0020 (NBSP, en/em spaces, thin, narrow NBSP, ...).
_ODD_SPACES = "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000\t"
# Invisible characters that carry no text: zero-width space/joiners, word joiner, BOM, soft hyphen.
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
# C0/C1 control characters except \n (tabs are spaces above; \r is handled by newline normalization).
_CONTROLS = "".join(chr(c) for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0)])

def replace_odd_characters(text: str) -> str:
    """Odd spaces (and NUL and the file, group, record and unit separators, which separate words or fields where
    they appear) become one space each; invisible and control characters go; ``\\n`` stays.

    A compiled pass over the UTF-8 bytes (cleaners.kernels.replace_odd_characters). Measured on the dev set
    (38 M characters): one regex with a callback per run 0.75 s, two plain regex passes 1.0 s, Arrow's RE2
    0.73 s, this ~0.1 s. tests/test_kernels.py
    holds the regex form as the reference.
    """
    data = np.frombuffer(text.encode("utf-8", "surrogatepass"), np.uint8)
    out = np.empty(len(data), np.uint8)
    written = kernels.replace_odd_characters(data, out)
    return text if written < 0 else out[:written].tobytes().decode("utf-8", "surrogatepass")


# Line breaks: CR, Unicode line and paragraph separators, NEL, and the vertical tab (a spreadsheet cell's line break
# in Word and Excel exports) and form feed (pdftotext's page break), as Python's str.splitlines has them. Deleted as
# control characters, VT and FF glued the words on either side. (The file, group, record and unit separators, which
# str.splitlines also breaks at, become spaces: in the one dev page that has them, 64 group separators stand between
# list markers and their items, "(c)\x1d To provide".)
_NEWLINES = re.compile("\r\n|[\r\u2028\u2029\u0085\x0b\x0c]")
_RARE_BREAKS = ("\r", "\u2028", "\u2029", "\u0085", "\x0b", "\x0c")

# ftfy runs at ~2.5 MB/s, so it is gated: only text containing a pair that UTF-8 read as Latin-1 or
# cp1252 produces ("Ã©", "â€™", "Â ", C1 controls) is checked with ftfy's own badness heuristic.
_MOJIBAKE_HINT = re.compile("[ÂÃÅÐÑ][\u0080-\u00bf]|â€|[\u0080-\u009f]")
# Every hint starts with one of these characters. Substring checks on them first are 15x faster than the
# regex's search over clean text (measured on the dev set: 0.04 s against 0.65 s).
_MOJIBAKE_LEADS = tuple("ÂÃÅÐÑâ" + "".join(chr(c) for c in range(0x80, 0xA0)))

FTFY_CONFIG = ftfy.TextFixerConfig(uncurl_quotes=False, fix_line_breaks=False, normalization="NFC")


def normalize_newlines(text: str) -> str:
    """CRLF and every other line break (``_NEWLINES``) become LF."""
    if any(mark in text for mark in _RARE_BREAKS):  # substring checks are memchr-fast; most text has none
        return _NEWLINES.sub("\n", text)
    return text


# Lines up to this long are memoized (the memo holds at most 4,096 of them: ~8 MB at most).
_MEMO_LINE_CHARS = 1_000


# A repaired line stays one line: a line break ftfy restores ("â€¨" is U+2028 read as cp1252) becomes a space, so
# that line numbers still count the input's lines.
_BREAKS_TO_SPACES = str.maketrans(dict.fromkeys("\n\r\u2028\u2029\u0085", " "))


# ftfy deletes control characters; NUL and the file, group, record and unit separators are spaces here
# (replace_odd_characters), so a repaired line gets them as spaces first, as a line without mojibake does.
_SEPARATORS_TO_SPACES = str.maketrans(dict.fromkeys("\x00\x1c\x1d\x1e\x1f", " "))


def _fix_line(line: str) -> str:
    """One line through ftfy when its badness heuristic calls it broken."""
    if not is_bad(line):
        return line
    return ftfy.fix_text(line.translate(_SEPARATORS_TO_SPACES), config=FTFY_CONFIG).translate(_BREAKS_TO_SPACES)


# Memoized (a pure function of the line): broken lines repeat across a site's pages (menus, footers). On the
# dev set 1,307 lines needed ftfy, 441 of them distinct, and ftfy's 0.3 ms a line was half of the character step.
_fixed_line = functools.lru_cache(maxsize=4096)(_fix_line)


def fix_mojibake(text: str) -> tuple[str, bool]:
    """Repair mojibake with ftfy on the lines that look broken; return the text and whether it changed.

    Only those lines go through ftfy (it works line by line anyway): whole documents were 10 ms each,
    3% of the cleaner's time on the dev set, for the few lines that needed it.
    """
    if not any(lead in text for lead in _MOJIBAKE_LEADS):
        return text, False
    spans: list[tuple[int, int]] = []
    for found in _MOJIBAKE_HINT.finditer(text):
        if spans and found.start() < spans[-1][1]:
            continue  # another hint on a line already taken
        start = text.rfind("\n", 0, found.start()) + 1
        end = text.find("\n", found.start())
        spans.append((start, len(text) if end < 0 else end))
    if not spans:
        return text, False
    parts: list[str] = []
    last = 0
    for start, end in spans:
        line = text[start:end]
        parts += [text[last:start], _fixed_line(line) if len(line) <= _MEMO_LINE_CHARS else _fix_line(line)]
        last = end
    parts.append(text[last:])
    fixed = "".join(parts)
    return fixed, fixed != text


def normalize_characters(text: str) -> tuple[str, bool]:
    """Newlines to LF, mojibake repaired, NFC, odd spaces to spaces, invisible/control characters out.

    Returns the text and whether ftfy changed it. Typographic quotes and dashes are kept.
    """
    text = normalize_newlines(text)
    text, fixed = fix_mojibake(text)
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    return replace_odd_characters(text), fixed
