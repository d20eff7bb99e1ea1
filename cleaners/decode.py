"""Bytes to text: UTF-8 first, byte-order marks honoured, anything else detected by charset-normalizer."""

from __future__ import annotations

import codecs
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


def decode_bytes(data: bytes) -> Decoded:
    """Decode ``data`` to text, or say why it is not text."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return Decoded(data.decode(encoding), encoding.replace("-sig", ""))
            except UnicodeDecodeError as exc:
                return Decoded(None, None, RejectReason.UNDECODABLE, f"has a {encoding} byte-order mark but: {exc}")
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
        try:
            return Decoded(data.decode(utf16), utf16)
        except UnicodeDecodeError:
            pass
    matches = from_bytes(data[: 1 << 20])  # detection on the first MiB: enough, and bounded
    best = matches.best()
    # On short Western text several single-byte code pages tie; cp1252 is by far the web's most
    # common (WHATWG decodes "latin-1" labels as cp1252), so it wins ties.
    for candidate in matches:
        if best is not None and candidate.encoding == "cp1252" and candidate.chaos <= best.chaos:
            best = candidate
    if best is None or best.encoding is None:
        return Decoded(None, None, RejectReason.UNDECODABLE, "no text encoding decodes these bytes")
    try:
        text = data.decode(best.encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        return Decoded(None, None, RejectReason.UNDECODABLE, f"detected {best.encoding} but: {exc}")
    if _control_share(text) > MAX_CONTROL_SHARE:
        return Decoded(None, None, RejectReason.BINARY, "binary content (too many control characters)")
    return Decoded(text, best.encoding)
