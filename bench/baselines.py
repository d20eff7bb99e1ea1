"""Baseline cleaners for the quality benchmark: reference points to read boilerstrip's scores against.

Each baseline is a function ``name(text: str) -> str`` that takes a document's raw text and returns
the text it keeps; :data:`BASELINES` maps the name used in reports to the function.

- ``keep-everything``: the text unchanged (precision floor, recall ceiling).
- ``c4-lines``: the line rules of C4 (Raffel et al. 2020) as datatrove's ``C4QualityFilter``
  implements them, applied to the whole text: a line is kept only if it ends in terminal punctuation
  (``. ? ! " '``, not ``...``), has at least 3 words, has no word over 1,000 characters and does not
  mention javascript or a policy phrase ("terms of use", "privacy policy", "uses cookies", ...);
  wikipedia-style citations (``[1]``, ``[edit]``) are cut out of kept lines. Kept lines are joined
  with single newlines. C4's document-level rules are off, because they judge whether a page is worth
  keeping, not which of its lines are junk: "at least 5 sentences" (``min_num_sentences=-1``, which
  would also need an NLTK model at run time), and the "lorem ipsum" and curly-bracket rules, which in
  datatrove drop the whole document rather than a line. With them on, 37 of the 3,092 dev documents
  come out empty (raw_text: overall F1 0.785, 215 catastrophic, instead of 0.814 and 179).
  Should datatrove still drop a whole document, the baseline returns "".

datatrove is an optional benchmark dependency (``pip install 'boilerstrip[bench]'``): this module
imports without it and only ``c4-lines`` needs it, loaded on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

BENCH_INSTALL_HINT = "pip install 'boilerstrip[bench]'"


class MissingBenchDependencyError(ImportError):
    """An optional benchmark dependency is not installed; the message says what to install."""


def keep_everything(text: str) -> str:
    """Keep every line: what a cleaner that removes nothing scores."""
    return text


@cache
def _c4_line_filter() -> tuple[Any, Any]:
    """datatrove's ``C4QualityFilter`` set to its line rules, and its ``Document`` class (loaded once)."""
    try:
        from datatrove.data import Document
        from datatrove.pipeline.filters import C4QualityFilter
    except ImportError as error:
        raise MissingBenchDependencyError(
            f"the c4-lines baseline needs datatrove, an optional benchmark dependency ({error}); "
            f"install it with: {BENCH_INSTALL_HINT}"
        ) from error
    c4 = C4QualityFilter(
        split_paragraph=True,            # one unit per line, as in C4 (not per sentence)
        remove_citations=True,
        filter_no_terminal_punct=True,
        min_num_sentences=-1,            # document-level: off (see the module docstring)
        min_words_per_line=3,
        max_word_length=1000,
        filter_lorem_ipsum=False,        # document-level in datatrove: would drop the whole document
        filter_javascript=True,
        filter_curly_bracket=False,      # document-level in datatrove: would drop the whole document
        filter_policy=True,
    )
    return c4, Document


def c4_lines(text: str) -> str:
    """The text minus the lines C4's line rules drop (datatrove's implementation); "" if C4 drops it all.

    Raises :class:`MissingBenchDependencyError` when datatrove is not installed.
    """
    c4, document_class = _c4_line_filter()
    doc = document_class(text=text, id="baseline")
    kept = c4.filter(doc)
    if kept is not True:  # False, or (False, reason) for a whole-document drop
        return ""
    return doc.text


BASELINES: dict[str, Callable[[str], str]] = {
    "keep-everything": keep_everything,
    "c4-lines": c4_lines,
}
