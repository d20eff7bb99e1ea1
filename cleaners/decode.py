"""Bytes to text: UTF-8 first, byte-order marks honoured, anything else detected.

Order: a byte-order mark; strict UTF-8; known binary signatures; UTF-16 without a BOM; UTF-8 with a few
invalid bytes (each read as cp1252, the usual culprit in mixed scraped text); cp1252 when the result
reads as Western European text; otherwise charset-normalizer on the first MiB.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from charset_normalizer import from_bytes

from cleaners.types import RejectReason

# File signatures of common binary formats that end up in text folders by mistake.
_BINARY_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"\x1f\x8b", "gzip archive"),
    (b"PK\x03\x04", "zip archive"),
    (b"%PDF-", "PDF document"),
    (b"\x7fELF", "ELF executable"),
    (b"BZh", "bzip2 archive"),
    (b"\xfd7zXZ\x00", "xz archive"),
    (b"\x28\xb5\x2f\xfd", "zstd archive"),
    (b"RIFF", "RIFF media file"),
)
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Share of control characters (other than tab/newline/CR) above which decoded "text" is binary.
MAX_CONTROL_SHARE = 0.05
# Share of U+FFFD tolerated in a BOM-marked text (e.g. a UTF-16 file cut in the middle of a character).
MAX_REPLACED_SHARE = 0.01
# Text with valid multi-byte UTF-8 is UTF-8 with damage when its invalid bytes are no more than its valid
# multi-byte characters, or at most this share of its bytes.
MAX_INVALID_UTF8_SHARE = 0.01

# Each byte as cp1252 reads it; the five bytes cp1252 leaves undefined read as Latin-1 (C1 controls).
_CP1252 = tuple(bytes([b]).decode("cp1252", errors="replace").replace("\ufffd", chr(b)) for b in range(256))
_ESCAPED = re.compile("[\udc80-\udcff]")  # bytes that are not UTF-8, after decoding with surrogateescape
_NON_ASCII = re.compile("[^\x00-\x7f]")
_LETTER = re.compile(r"[^\W\d_]")

# Letters a cp1252 text in one Western European language uses beyond ASCII (lowercase). Text whose
# accented letters fit one of these sets is read as cp1252 even when a detector prefers a code page
# that decodes the same bytes to a mix of Baltic or Central European letters ("Crčme brūlée").
_WESTERN_LETTERS: tuple[frozenset[str], ...] = tuple(frozenset(s) for s in (
    "àâæçéèêëîïôœùûüÿ",        # French
    "äöüßé",                   # German
    "áéíñóúü",                 # Spanish
    "àáâãçéêíóôõúü",           # Portuguese
    "àèéìíîòóùú",              # Italian
    "àçéèíïòóúü",              # Catalan
    "áéèëïóöüúíâêô",           # Dutch
    "æøåéóôà",                 # Danish, Norwegian
    "åäöéü",                   # Swedish, Finnish
    "äöõüšž",                  # Estonian, Finnish loanwords
    "áðéíóúýþæö",              # Icelandic
))
# Non-letters of cp1252 beyond ASCII that Western text uses. Inside a word (letters on both sides) only
# the apostrophes and the middle dot are plausible: "zatwierdzi³a" is Polish read with the wrong code page.
_WESTERN_MARKS = frozenset("\xa0¡¢£¥§©«®°±·»¿×÷€‚„…†‡‰‹›‘’“”•–—™¹²³ªº¼½¾´¨µ¶")
_IN_WORD_OK = frozenset("’'‘·")
# In English text a few foreign names ("Zürich", "Søren") mix letters of several languages; Central
# European text read as cp1252 has far more accented letters (Czech ~15%, Hungarian ~10%).
MAX_FOREIGN_LETTER_SHARE = 0.03


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str | None
    encoding: str | None
    failure: RejectReason | None = None
    detail: str = ""


def _control_share(text: str) -> float:
    sample = text[:65536]
    if not sample:
        return 0.0
    controls = sum(1 for c in sample if (ord(c) < 32 and c not in "\t\n\r") or 0x7F <= ord(c) < 0xA0)
    return controls / len(sample)


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 without a BOM: one of every two bytes of ASCII-range text is NUL."""
    sample = data[:4096]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    half = len(sample) // 2
    if odd > 0.4 * half and even < 0.05 * half:
        return "utf-16-le"
    if even > 0.4 * half and odd < 0.05 * half:
        return "utf-16-be"
    return None


def _mostly_utf8(data: bytes) -> str | None:
    """UTF-8 with a few invalid bytes (a stray cp1252 quote, a cut multi-byte character), with each
    invalid byte read as cp1252; None when the first MiB is not mostly UTF-8."""
    sample = data[: 1 << 20].decode("utf-8", errors="surrogateescape")
    invalid = len(_ESCAPED.findall(sample))
    valid_multibyte = len(_NON_ASCII.findall(sample)) - invalid
    if valid_multibyte < 1 or invalid > max(valid_multibyte, MAX_INVALID_UTF8_SHARE * len(sample)):
        return None
    return decode_mostly_utf8(data)


def decode_mostly_utf8(data: bytes) -> str:
    """``data`` as UTF-8, each invalid byte read as cp1252 (never fails)."""
    text = data.decode("utf-8", errors="surrogateescape")
    return _ESCAPED.sub(lambda m: _CP1252[ord(m.group()) - 0xDC00], text)


def _inside_word(text: str, i: int) -> bool:
    return 0 < i < len(text) - 1 and text[i - 1].isalpha() and text[i + 1].isalpha()


def _western_cp1252(data: bytes) -> str | None:
    """``data`` as cp1252 when its first MiB reads as Western European text, else None."""
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return None
    sample = text[: 1 << 20]
    accented: set[str] = set()
    n_accented = 0
    for found in _NON_ASCII.finditer(sample):
        c, i = found.group(), found.start()
        if c.isalpha():
            accented.add(c.lower())
            n_accented += 1
        elif c not in _WESTERN_MARKS or (c not in _IN_WORD_OK and _inside_word(sample, i)):
            return None
    if not accented or any(accented <= letters for letters in _WESTERN_LETTERS):
        return text
    n_letters = len(_LETTER.findall(sample))
    return text if n_accented <= MAX_FOREIGN_LETTER_SHARE * n_letters else None


def _with_bom(data: bytes, bom: bytes, encoding: str) -> Decoded:
    try:
        return Decoded(data.decode(encoding), encoding.replace("-sig", ""))
    except UnicodeDecodeError as exc:
        if encoding == "utf-8-sig":  # a UTF-8 BOM on damaged UTF-8: decode the rest like any other bytes
            return decode_bytes(data[len(bom):])
        text = data.decode(encoding, errors="replace")
        if text.count("\ufffd") <= max(1, MAX_REPLACED_SHARE * len(text)):  # e.g. cut mid-character
            return Decoded(text, encoding)
        return Decoded(None, None, RejectReason.UNDECODABLE, f"has a {encoding} byte-order mark but: {exc}")


def decode_bytes(data: bytes) -> Decoded:
    """Decode ``data`` to text, or say why it is not text."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _with_bom(data, bom, encoding)
    try:
        text = data.decode("utf-8")
        # NUL-heavy "UTF-8" is really UTF-16 without a BOM (or binary); anything else is fine.
        if "\x00" not in text or _control_share(text) <= MAX_CONTROL_SHARE:
            return Decoded(text, "utf-8")
    except UnicodeDecodeError:
        pass
    for magic, kind in _BINARY_MAGIC:
        if data.startswith(magic):
            return Decoded(None, None, RejectReason.BINARY, f"binary content ({kind})")
    utf16 = _utf16_without_bom(data)
    if utf16:
        # An odd byte count: a file cut in the middle of its last character, which goes (the rest is text).
        try:
            text = data[:len(data) - len(data) % 2].decode(utf16)
        except UnicodeDecodeError:
            pass
        else:
            if _control_share(text) <= MAX_CONTROL_SHARE:
                return Decoded(text, utf16)
            return Decoded(None, None, RejectReason.BINARY, "binary content (too many control characters)")
    guessed: tuple[str | None, str] = (_mostly_utf8(data), "utf-8+cp1252")
    if guessed[0] is None:
        guessed = (_western_cp1252(data), "cp1252")
    if guessed[0] is None:
        matches = from_bytes(data[: 1 << 20])  # detection on the first MiB: enough, and bounded
        best = matches.best()
        if best is None or best.encoding is None:
            return Decoded(None, None, RejectReason.UNDECODABLE, "no text encoding decodes these bytes: if it is text, "
                           "convert it to UTF-8 (iconv -f ENCODING -t UTF-8) and run again; else remove it from the "
                           "input")
        try:
            guessed = (data.decode(best.encoding), best.encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            return Decoded(None, None, RejectReason.UNDECODABLE, f"detected {best.encoding} but: {exc}; convert it "
                           "to UTF-8 (iconv -f ENCODING -t UTF-8) and run again")
    text, encoding = guessed
    if _control_share(text) > MAX_CONTROL_SHARE:
        return Decoded(None, None, RejectReason.BINARY, "binary content (too many control characters)")
    return Decoded(text, encoding)
