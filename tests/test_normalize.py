"""Character and layout normalization."""

from __future__ import annotations

from cleaners.document import _laid_out_text, _Lines
from cleaners.normalize import fix_mojibake, normalize_characters


def test_newlines_become_lf() -> None:
    text, _ = normalize_characters("a\r\nb\rc\u2028d")
    assert text == "a\nb\nc\nd"


def test_form_feed_and_vertical_tab_are_line_breaks() -> None:
    """A form feed (pdftotext's page break) and a vertical tab (a spreadsheet cell's line break) break lines, as
    str.splitlines has it; deleted as control characters, they glued words. The file, group, record and unit
    separators separate words: spaces."""
    text, _ = normalize_characters("Headline Three\x0cThe council met.\x0bFirst line")
    assert text == "Headline Three\nThe council met.\nFirst line"
    text, _ = normalize_characters("(c)\x1d To provide\x1ca\x1eb\x1fc")
    assert text == "(c)  To provide a b c"
    # The same on a line ftfy repairs (ftfy deletes control characters): "Café menu Specials", not "menuSpecials".
    assert normalize_characters("CafÃ© menu\x1dSpecials\x00today")[0] == "Café menu Specials today"


def test_odd_spaces_invisible_and_control_characters() -> None:
    text, _ = normalize_characters("a\u00a0b\u2009c\u200bd\u00ade\x00f\x07g\tg")
    assert text == "a b cde fg g"  # NUL separates words: a space


def test_nfc() -> None:
    text, _ = normalize_characters("Cafe\u0301")
    assert text == "Café"


def test_mojibake_is_repaired_and_quotes_are_kept() -> None:
    broken = "The president\u00e2\u20ac\u2122s \u00e2\u20ac\u0153policy\u00e2\u20ac\u009d"
    text, fixed = normalize_characters(broken)
    assert fixed
    assert text == "The president’s “policy”"


def test_a_repaired_line_stays_one_line() -> None:
    """Mojibake of a line separator ("â€¨", U+2028 read as cp1252) is repaired to a space, not a line break: line
    numbers keep counting the input's lines, and the text is LF-only as promised."""
    broken = "It lasted two years.\u00e2\u20ac\u00a8Share this article\nNext line"
    text, fixed = normalize_characters(broken)
    assert fixed
    assert text == "It lasted two years. Share this article\nNext line"


def test_clean_text_does_not_go_through_ftfy() -> None:
    text = "Typographic “quotes” and ‘apostrophes’ – and dashes — stay as they are."
    assert fix_mojibake(text) == (text, False)
    assert normalize_characters(text) == (text, False)


def _layout_reference(text: str) -> str:
    """Layout written plainly on the kept text: trailing spaces out, one blank line between paragraphs,
    none at the edges."""
    out: list[str] = []
    blank = False
    for line in text.split("\n"):
        line = line.rstrip(" ")
        if not line.strip():
            blank = bool(out)
            continue
        if blank:
            out.append("")
            blank = False
        out.append(line)
    return "\n".join(out)


def test_layout() -> None:
    assert _laid_out_text(_Lines.of("\n\n  \na  \n\n\n\nb\n \nc\n\n")) == "a\n\nb\n\nc"
    assert _laid_out_text(_Lines.of("a\nb")) == "a\nb"
    assert _laid_out_text(_Lines.of("\n \n")) == ""


def test_the_layout_of_kept_lines_is_the_plain_layout_of_their_text() -> None:
    text = "\n\n  \nTitle  \n  indented line \n\n\n\nremoved\nb\n \n\nc\nremoved too\n\nd  \n\n"
    for removed in ([], [9], [9, 14], [3, 4, 9, 10, 14, 16], list(range(18))):
        doc = _Lines.of(text)
        for i in removed:
            doc.remove(i, "test", "test")
        kept = "\n".join(line for i, line in enumerate(doc.lines) if i not in doc.removed)
        assert _laid_out_text(doc) == _layout_reference(kept), removed
