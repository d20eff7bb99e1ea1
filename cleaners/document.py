"""Clean one document: normalize characters, take the title out, drop junk lines, normalize layout.

:func:`clean_document` is pure: the same text, rules and config give the same result. Every line
that leaves the text is returned as a :class:`~cleaners.types.RemovedLine` naming the rule and why.
A line no rule names is kept.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

import numpy as np

from cleaners import kernels, textbytes
from cleaners.boilerplate import TOP_PROSE_BYTES, KeyedTexts, LineStats
from cleaners.normalize import normalize_characters
from cleaners.rulepack import (
    Action,
    Rule,
    RuleProgram,
    RuleSet,
    canonical_line,
    categorical_rows,
    data_row,
    labelled_row,
    pipe_cells,
    pipe_table_rows,
)
from cleaners.textbytes import LineBytes
from cleaners.types import CleanResult


@dataclass(frozen=True, slots=True)
class CleanConfig:
    """Settings of the structural steps. Rule-level settings live in the rule packs."""

    title_zone_lines: int = 4     # how many leading non-blank lines may hold the title or its repeats
    title_max_chars: int = 300    # a longer first line is a paragraph, not a title
    title_max_words: int = 30
    # Learned per-source boilerplate: a line on at least `boilerplate_share` of a source's documents is
    # template, once the source has `min_source_docs` documents (fewer: the other rules only).
    min_source_docs: int = 5
    boilerplate_share: float = 0.5
    min_template_docs: int = 5  # and on at least this many of them
    # Safety valve: when learned steps would leave less than this share of the words, they are undone
    # and the row is flagged `low_confidence`; rule-pack removals (explicit) stay.
    min_kept_share: float = 0.15
    # Uncertainty valve: when the lines the classifier drops with middling confidence (between its normal
    # and its cautious threshold) hold more than this share of the words, only the confident drops stay.
    # Chosen out of fold on the dev set with the other decision settings (docs/line-classifier.md).
    max_uncertain_share: float = 0.2


# A page <title> is often "Headline - Site Name"; these separate the headline from the site name.
_TITLE_SEPARATORS = re.compile(r"\s+(?:[-–—|:·•»]|::)\s+")
# Headlines may end in "?" or "!"; a first line ending in these is more likely a sentence.
_SENTENCE_END = re.compile(r"[.;,:]['\"”’)]*$")


# A removal while cleaning: (line_no, text, rule, reason), as in CleanResult.removed_rows.
Removal = tuple[int, str, str, str]


@dataclass(slots=True)
class _Lines:
    """The document's lines and the decision taken on each; indices are 0-based."""

    lines: list[str]
    stripped: list[str]     # each line without surrounding whitespace, computed once
    removed: dict[int, Removal]
    nonblank: np.ndarray    # mask of the lines with text, computed once
    # The text as UTF-8 with each line's byte bounds (a view of the batch's buffer when cleaned in a batch).
    encoded: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    # A step held back from removing most of the document (a cut marker above most of its words): the row is
    # flagged low_confidence, as when the safety valve undoes the learned steps.
    held_back: bool = False
    # Lines a keep rule protects: article text no later step removes.
    protected: set[int] = field(default_factory=set)
    # The rows of pipe tables (cleaners.rulepack.pipe_table_rows), found when a rule first asks.
    table_rows: set[int] | None = None

    def in_pipe_table(self, index: int) -> bool:
        if self.stripped[index].count("|") < 2:
            return False  # a row has 3 cells or more; the document's rows are found only when a line could be one
        if self.table_rows is None:
            self.table_rows = pipe_table_rows(self.stripped)
        return index in self.table_rows

    @classmethod
    def of(cls, text: str) -> _Lines:
        lines = text.split("\n")
        stripped = list(map(str.strip, lines))
        return cls(lines, stripped, {}, np.fromiter(map(bool, stripped), bool, len(stripped)))

    def utf8(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(bytes, line starts, line ends) of the text."""
        if self.encoded is None:
            data = np.frombuffer(textbytes.encode("\n".join(self.lines)), np.uint8)
            self.encoded = (data, *textbytes.line_bounds(data))
        return self.encoded

    def remove(self, index: int, rule: str, reason: str) -> None:
        if index not in self.removed:
            self.removed[index] = (index + 1, self.stripped[index], rule, reason)

    def first_nonblank(self, k: int) -> list[int]:
        """The first ``k`` lines still in the text (the title zone), without scanning the whole text."""
        found: list[int] = []
        for i, line in enumerate(self.stripped):
            if line and i not in self.removed:
                found.append(i)
                if len(found) == k:
                    break
        return found

    def alive(self) -> np.ndarray:
        """Mask of the lines still in the text: not blank, not removed."""
        mask = self.nonblank.copy()
        if self.removed:
            mask[list(self.removed)] = False
        return mask


def _looks_like_title(line: str, config: CleanConfig) -> bool:
    return len(line) <= config.title_max_chars and len(line.split()) <= config.title_max_words


_TITLE_WORD = re.compile(r"\w+")
# A line is the printed form of a page's own title when they share this share of the longer one's words.
PAGE_TITLE_OVERLAP = 0.6


def _headline_like(page_title: str, top: list[int], doc: _Lines, config: CleanConfig) -> str | None:
    """The line at the top printed from the page's own title (HTML <title>/og:title), which is often the headline
    with a site name or a small edit ("Council approves bridge rebuild | Gazette" above "Council approves the
    bridge rebuild"): the title-like line sharing the most words with it, at least ``PAGE_TITLE_OVERLAP`` of the
    longer one's. None when no line does; then the title is guessed as without one, and a short category label
    above the headline is not taken for it when the headline matches. Tried after a line printed twice and a
    "Headline - Site" line above the bare headline, which say more. Words are word-character runs: in scripts written
    without spaces (Chinese, Japanese, Thai) a run is a phrase, and only a near-exact match counts."""
    wanted = set(_TITLE_WORD.findall(page_title.casefold()))
    best, best_share = None, PAGE_TITLE_OVERLAP
    for i in top:
        line = doc.stripped[i]
        if not _looks_like_title(line, config):
            continue
        words = set(_TITLE_WORD.findall(line.casefold()))
        share = len(words & wanted) / max(len(words), len(wanted), 1)
        if share >= best_share and (best is None or share > best_share):
            best, best_share = line, share
    return best


def _acting_rules(doc: _Lines, program: RuleProgram, i: int, rank: int, n_alive: int,
                  inside_article: Callable[[int], bool] | None = None) -> list[Rule]:
    """The rules of ``program`` that act on line ``i`` where it stands: they match it, it is in their zone (``rank``
    among the ``n_alive`` lines still in the text), it is not a pipe-table row they leave alone, and, for a rule with
    ``spare_inside_article``, it is not inside the article (``inside_article(i)``, :func:`_article_interior`)."""
    acting = [rule for rule in program.matching_rules(doc.stripped[i]) if rule.in_zone(rank, n_alive - 1 - rank)
              and not (rule.keep_table_rows and doc.in_pipe_table(i))]
    if inside_article is not None and any(rule.spare_inside_article for rule in acting) \
            and rank <= n_alive - 1 - rank and inside_article(i):
        acting = [rule for rule in acting if not rule.spare_inside_article]
    return acting


# A line stands inside the article (where a rule with spare_inside_article does not act: a "Menu" heading under a
# restaurant review's first paragraph is not a menu button) when it is nearer the top of the text than the bottom,
# ARTICLE_WORDS_ABOVE words of prose stand above it, and a line of prose below it. Prose: a line of PROSE_LINE_WORDS
# words or more that ends a sentence, printed once (a page's description printed twice at the top is not the
# article). 40 words, as a standfirst (15-35 words) may stand above page furniture; nearer the top, as a footer's
# lines often have prose under them (a disclaimer). Consent texts and site blurbs can be 40 words of prose too: a
# rule opts in only for labels that are also article headings.
ARTICLE_WORDS_ABOVE = 40
PROSE_LINE_WORDS = 8
_SENTENCE_FINAL = re.compile(r"[.!?…][\"'”’)\]]*$")


def _article_interior(doc: _Lines, line_words: np.ndarray) -> Callable[[int], bool]:
    """``inside(i)``: whether line ``i`` has article prose still in the text on both sides (see
    ``ARTICLE_WORDS_ABOVE``; the caller checks that it is nearer the top). The prose lines are found when first
    asked: only the match of a rule with ``spare_inside_article`` asks."""
    prose: list[int] | None = None

    def inside(i: int) -> bool:
        nonlocal prose
        if prose is None:
            long_lines = np.flatnonzero(line_words >= PROSE_LINE_WORDS).tolist()
            printed = Counter(doc.stripped[j] for j in long_lines)
            prose = [j for j in long_lines if printed[doc.stripped[j]] == 1 and _SENTENCE_FINAL.search(doc.stripped[j])]
        alive = [j for j in prose if j not in doc.removed]
        return any(j > i for j in alive) and int(sum(line_words[j] for j in alive if j < i)) >= ARTICLE_WORDS_ABOVE

    return inside


def _first_unruled(doc: _Lines, program: RuleProgram | None, screened: Sequence[int] | None, count: int,
                   template: np.ndarray | None = None) -> tuple[list[int], bool]:
    """The first ``count`` lines still in the text that no rule of ``program`` would take out where they stand ("Skip
    to content", "Advertisement", a pipe menu: not a title, whatever their shape) and that are not ``template``
    lines of the source (:func:`template_lines`: its menu, its masthead), and whether such a line stands above the
    last of them. ``screened``: the document's lines that passed the program's screen (:func:`_screen_batch`), when
    known; the rules themselves run only on those.

    One walk from the top. A line's rules depend only on where it stands among the lines still in the text, so this
    is the window the title step used to widen past each ruled line it found, which re-checked the whole window each
    time (cubic: a page opening with 2,000 "Read more" lines took 22 s)."""
    wanted = set(screened) if screened is not None else None
    n_alive = int(doc.nonblank.sum()) - len(doc.removed)
    kept: list[int] = []
    ruled = False
    # Lazily, line by line: the walk stops at the count-th unruled line (listing every line first cost a Python
    # step per line of every document).
    in_text = (i for i, line in enumerate(doc.stripped) if line and i not in doc.removed)
    for rank, i in enumerate(in_text):
        if template is not None and template[i]:
            ruled = True
            continue
        line = doc.stripped[i]
        candidate = program is not None and ((i in wanted) if wanted is not None else (
            len(line) <= program.longest and program.screen is not None and program.screen.fullmatch(line) is not None))
        if candidate:
            acting = [rule.action for rule in _acting_rules(doc, program, i, rank, n_alive)]
            if acting and Action.KEEP not in acting:  # a keep rule's line is article text
                ruled = True
                continue
        kept.append(i)
        if len(kept) == count:
            break
    return kept, ruled


def _title_zone(doc: _Lines, config: CleanConfig, program: RuleProgram | None, screened: Sequence[int] | None,
                template: np.ndarray | None) -> list[int] | None:
    """The title zone: the first ``title_zone_lines`` lines still in the text that no rule of ``program`` takes and
    that are not ``template`` lines (a rule's zone counts the ruled ones above them). None when fewer than two are
    left: more text must follow a title."""
    top = doc.first_nonblank(max(config.title_zone_lines, 2))
    if len(top) < 2:
        return None
    top = top[: config.title_zone_lines]
    if (program is not None and program.screen is not None) or template is not None:
        unruled, ruled = _first_unruled(doc, program, screened, max(config.title_zone_lines, 2), template)
        if ruled:
            if len(unruled) < 2:
                return None
            top = unruled[: config.title_zone_lines]
    return top or None


@dataclass(frozen=True, slots=True)
class _TitleGuess:
    """A headline found in a title zone without a declared title, and what bears it out: ``repeat`` (printed twice),
    ``page-title`` (under its "Headline - Site" line), ``metadata`` (the page's own title, printed with a small
    difference), or only the first line's ``shape``."""

    title: str
    evidence: str
    page_title_line: int | None = None  # a "Headline - Site" line above it, which goes as the page's <title>


def _guess_title(doc: _Lines, top: list[int], canon: dict[int, str], known_title: str | None,
                 config: CleanConfig) -> _TitleGuess | None:
    first = top[0]
    repeats = [i for i in top[1:] if canon[i] == canon[first]]
    # "Headline - Site Name" on the first line, the bare headline below it.
    prefixed = [
        i for i in top[1:]
        if len(canon[i]) >= 15 and canon[first].startswith(canon[i])
        and _TITLE_SEPARATORS.match(doc.stripped[first][len(doc.stripped[i]):] + " ")
    ]
    if _looks_like_title(doc.stripped[first], config) and (repeats or prefixed):
        if prefixed:
            return _TitleGuess(doc.stripped[prefixed[0]], "page-title", first)
        return _TitleGuess(doc.stripped[first], "repeat")
    if known_title and (headline := _headline_like(known_title, top, doc, config)) is not None:
        return _TitleGuess(headline, "metadata")  # the page's own title, printed with a small difference
    if _looks_like_title(doc.stripped[first], config) and not _SENTENCE_END.search(doc.stripped[first]):
        return _TitleGuess(doc.stripped[first], "shape")
    return None


# Below the template lines at the top, a line printed twice is the headline when it has at least this many words (a
# name printed twice, under an avatar and as a link, or a section printed as a breadcrumb and a kicker, has fewer).
HEADLINE_MIN_WORDS = 4

# Under a masthead, the headline is the first line of the title zone below the template lines when it reads as one by
# its shape: a title of HEADLINE_MIN_WORDS word units or more that does not end like a sentence. Passed over above it:
# datelines and bylines ("Saturday, 28 November 2026", "By Jane Smith and Tom Brown": a headline's length too), and
# short lines on other pages of the source too (a section kicker, a blog's name); any other line ends the look (a short
# headline, then its standfirst: the page gets no title rather than the standfirst).
# A dateline: at least DATELINE_WORD_SHARE of its words are figures, month or weekday names or the words around a date,
# with at least one figure or name; a headline with a date in it has more words of its own ("Storm hits coast on March
# 3": half; "Lotto results: Wednesday, November 25, 2026": two thirds).
# Month and weekday names (English, French, Spanish, German, Italian, Portuguese, Dutch), and the words around a
# date (time zones, "Published on", "Mis à jour le", "Stand: ... Uhr"). Not the classifier's "date" lexicon
# (cleaners.linejudge.KEYWORDS): that one is English only and part of the trained model's features.
_DATE_NAMES = frozenset((
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november",
    "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "monday",
    "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "mon", "tue", "tues", "wed", "thu", "thur",
    "thurs", "fri", "sat", "sun", "janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
    "septembre", "octobre", "novembre", "décembre", "janv", "févr", "avr", "juil", "déc", "lundi", "mardi",
    "mercredi", "jeudi", "vendredi", "samedi", "dimanche", "enero", "febrero", "marzo", "abril", "mayo", "junio",
    "julio", "agosto", "septiembre", "setiembre", "octubre", "noviembre", "diciembre", "ene", "abr", "ago", "dic",
    "lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo", "januar", "februar", "märz", "juli",
    "oktober", "dezember", "mär", "okt", "dez", "montag", "dienstag", "mittwoch", "donnerstag", "freitag", "samstag",
    "sonntag", "gennaio", "febbraio", "aprile", "maggio", "giugno", "luglio", "settembre", "ottobre", "dicembre",
    "lunedì", "martedì", "mercoledì", "giovedì", "venerdì", "sabato", "domenica", "janeiro", "fevereiro", "março",
    "maio", "junho", "julho", "setembro", "outubro", "dezembro", "segunda-feira", "terça-feira", "quarta-feira",
    "quinta-feira", "sexta-feira", "januari", "februari", "maart", "mei", "augustus", "maandag", "dinsdag",
    "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag",
))
_DATE_CONTEXT = frozenset((
    "am", "pm", "a.m", "p.m", "gmt", "utc", "bst", "cet", "cest", "est", "edt", "pst", "pdt", "et", "pt", "on", "at",
    "updated", "published", "posted", "last", "modified", "date", "time", "le", "à", "mis", "jour", "publié",
    "publiée", "modifié", "modifiée", "h", "el", "de", "del", "a", "las", "actualizado", "actualizada", "publicado",
    "publicada", "um", "uhr", "stand", "aktualisiert", "veröffentlicht", "vom", "il", "alle", "ore", "aggiornato",
    "pubblicato", "em", "às", "atualizado", "atualizada", "op", "om", "bijgewerkt", "gepubliceerd",
))
DATELINE_WORD_SHARE = 0.7
# A byline: one of these words, then names (one to four capitalized words each, joined by "and", "und", "et", "y", "&"
# or a comma), then the end of the line or a separator before a role or a date ("By Jane Smith and Tom Brown", "Par
# Jean Dupont, envoyé spécial"), with no colon, on a line of at most BYLINE_MAX_WORDS words. Not "By the numbers",
# "Von der Leyen visits Kyiv", "Por Madrid pasa la nueva línea", "By The Numbers: Tourism In 2026".
_CAPITALIZED_NAME = r"[A-ZÀ-ÖØ-Þ][\w'’.-]*"
_BYLINE = re.compile(
    r"(?:(?:written|posted|words|story|opinion|analysis|reporting|photos|text) )?(?:by|von|par|por)\s+"
    rf"(?P<names>(?-i:{_CAPITALIZED_NAME}(?:\s+{_CAPITALIZED_NAME}){{0,3}}"
    rf"(?:\s*(?:,|&|\band\b|\bund\b|\bet\b|\by\b)\s*{_CAPITALIZED_NAME}(?:\s+{_CAPITALIZED_NAME}){{0,3}})*))"
    r"\s*(?:$|[,|•·–—-])", re.IGNORECASE)
BYLINE_MAX_WORDS = 12
_WORD_EDGES = "\"'“”‘’()[],.;:|•·-–—"


def _dateline_or_byline(line: str) -> bool:
    """Whether a title-shaped line under a masthead is a dateline or a byline, not the headline (``_DATE_NAMES``,
    ``_DATE_CONTEXT``, ``_BYLINE``)."""
    words = [word.strip(_WORD_EDGES).casefold() for word in line.split()]
    words = [word for word in words if word]
    if ":" not in line and len(words) <= BYLINE_MAX_WORDS and _BYLINE.match(line):
        return True
    named = sum(1 for word in words if word in _DATE_NAMES or any(c.isdigit() for c in word))
    around = sum(1 for word in words if word in _DATE_CONTEXT)
    return named > 0 and named + around >= DATELINE_WORD_SHARE * len(words)


def _headline_under_masthead(doc: _Lines, zone: list[int], config: CleanConfig, units: Callable[[int], int],
                             recurring: np.ndarray | None, masthead: np.ndarray | None, start: int
                             ) -> _TitleGuess | None:
    """The headline under a masthead (line ``start``), read by its shape from the first lines of ``zone`` (the title
    zone below the source's template lines): the first line that is not a dateline or byline, nor a short line
    printed on other pages of the source too (``recurring``), when it is a title of ``HEADLINE_MIN_WORDS`` word units
    (``units``) or more, at most a top line's length (``TOP_PROSE_BYTES`` characters), that does not end like a
    sentence (``.:;,``, nor ``!?…``) and does not go on in the next line (which starts in lower case: a sentence split
    at a link).
    None when a line of a headline's length at the top of most of the source's pages (``masthead``) stands between
    the masthead and it: the page's own headline is then such a line (in a "Trending" list above it, or shared by the
    versions of a live story), and the line under it is its standfirst or first entry, not its headline."""
    for i in zone:
        line = doc.stripped[i]
        if not _looks_like_title(line, config) or _SENTENCE_END.search(line):
            return None
        long_enough = units(i) >= HEADLINE_MIN_WORDS
        if _dateline_or_byline(line) or (not long_enough and recurring is not None and recurring[i]):
            continue
        if not long_enough or len(line) > TOP_PROSE_BYTES or _SENTENCE_FINAL.search(line):
            return None
        following = next((doc.stripped[j] for j in range(i + 1, len(doc.stripped)) if doc.stripped[j]), "")
        if following[:1].islower():
            return None
        if masthead is not None and any(masthead[j] and units(j) >= HEADLINE_MIN_WORDS for j in range(start + 1, i)):
            return None
        return _TitleGuess(line, "shape")
    return None


def _masthead_line(zone: list[int], canon: dict[int, str], title: str, masthead: np.ndarray | None) -> int | None:
    """The ``masthead`` line (:func:`masthead_lines`) of ``zone`` (``canon``: its lines' canonical forms) on which
    ``title`` is printed (case and spacing aside), if any."""
    if masthead is None:
        return None
    wanted = canonical_line(title)
    return next((i for i in zone if masthead[i] and canon[i] == wanted), None)


# Where a page's top ends for _printed_again: its first line of prose (over TOP_PROSE_BYTES characters here, pass 1's
# bound), or after this many lines with text (a menu of a few dozen lines, on a page of short lines only).
_TOP_SCAN_LINES = 200


def _printed_again(doc: _Lines, first: int, adjacent: bool) -> bool:
    """Whether line ``first``'s text is printed again lower in the page's top (before its first line of prose): a
    headline shown at the top of every page is printed again as the headline on its own page. Unless ``adjacent``
    (a line of a headline's length), the copy must stand apart from it (another line in between): a short masthead
    printed twice stands twice at once (the logo's text, then the name)."""
    wanted = canonical_line(doc.lines[first])
    apart = adjacent
    seen = 0
    for i in range(first + 1, len(doc.lines)):
        line = doc.stripped[i]
        if not line:
            continue
        seen += 1
        if len(line) > TOP_PROSE_BYTES or seen > _TOP_SCAN_LINES:
            return False
        if canonical_line(line) == wanted:
            if apart:
                return True
        else:
            apart = True
    return False


def take_title(doc: _Lines, known_title: str | None, config: CleanConfig,
               program: RuleProgram | None = None, screened: Sequence[int] | None = None,
               declared: bool = True, template: np.ndarray | None = None,
               masthead: np.ndarray | None = None, words: np.ndarray | None = None,
               recurring: np.ndarray | None = None) -> str | None:
    """Find the title at the top, move it out of the text, and drop its repeats.

    The title is the title the input declared (a record's field), when it has one: its copies at the top go (and a
    page <title> of it with the site name), and nothing else there is taken for a title (a body given without its
    title starts with article text). A title from the page's HTML metadata (``declared`` False) is the title when
    it is printed at the top; else the headline is found as without one. Else: a line printed twice at the top (page
    <title> plus headline); a "Headline - Site" line above the bare headline (the headline); the line printed from a
    page's own title with a small difference (:func:`_headline_like`); the first line when it is short, does not
    end like a sentence, and more text follows.
    Lines that a rule of ``program`` (the source's rule packs) would remove are never the title: they are
    left for the rules ("Skip to content" above the headline).
    ``template``: the mask of the source's template lines (:func:`template_lines`: its menu and masthead, from the
    run's and earlier runs' counts, the same for every document of the source in a run), None when the source has
    too little history. When there is no headline, or only the first line's shape names one, the title zone is looked
    at again below them: a "Headline - Site" line (or the page's own title) far above its bare headline under a long
    menu is matched there, and, when the first look found nothing, a headline printed twice (of
    ``HEADLINE_MIN_WORDS`` words or more). The title's copies there go, a declared title's too.
    ``masthead``: the template lines that stand at the top of most of the source's pages they are on
    (:func:`masthead_lines`). Such a line printed again in the page's top (apart from it, when short) is this page's
    headline, which the other pages show at their top (a "Trending" bar): it stays the title. Else, shorter than a
    headline (under ``HEADLINE_MIN_WORDS`` word units: the site's name, a section banner), it is never the title, nor
    the page's own title when that names the site: the headline is looked for below the template lines, by the
    evidence above or by its shape (:func:`_headline_under_masthead`), else the page has no title. A longer one stays
    the title when nothing below reads as a headline.
    ``words``: the word units of each line (cleaners.kernels.line_word_units; ``str.split`` words without it).
    ``recurring``: the lines on other pages of the source too (two or more in the counts; a blog's name, a kicker).
    """
    known_title = (known_title or "").strip() or None  # a blank declared title is no title

    def units(i: int) -> int:
        return int(words[i]) if words is not None else len(doc.stripped[i].split())

    top = _title_zone(doc, config, program, screened, None)
    if top is None:
        return known_title
    canon = {i: canonical_line(doc.lines[i]) for i in top}
    below: tuple[list[int], dict[int, str]] | None = None
    if template is not None:
        beyond = _title_zone(doc, config, program, screened, template)
        if beyond is not None and beyond != top:
            below = beyond, {i: canonical_line(doc.lines[i]) for i in beyond}
    if known_title and not declared and (at := _masthead_line(top, canon, known_title, masthead)) is not None and \
            units(at) < HEADLINE_MIN_WORDS and not _printed_again(doc, at, adjacent=False):
        known_title = None  # the page's own <title> is the site's name: it says nothing of the headline
    if known_title:
        wanted = canonical_line(known_title)
        hits = [i for i in top if canon[i] == wanted]
        if hits:
            _remove_title_copies(doc, top, canon, known_title, below)
            return known_title
        if declared:
            # The declared title with the site name after it ("Headline | Site"): the page's <title>.
            for i in top:
                if canon[i].startswith(wanted) and _TITLE_SEPARATORS.match(canon[i][len(wanted):] + " "):
                    doc.remove(i, PAGE_TITLE_RULE, "page <title>: the declared title with the site name")
            if below is not None:
                _remove_title_copies(doc, *below, known_title)  # its copies under the site's menu
            return known_title
    guess = _guess_title(doc, top, canon, known_title, config)
    # The guess stands at the top of most of the source's pages (printed once or twice, matched with the page's own
    # <title>, or the bare line under a "Line | Motto" one). Printed again in the page's top (apart from it, when
    # short), it is this page's headline that the source's other pages show at their top (a "Trending" bar, a short
    # page's "Most read" list): it stays the title. Else, shorter than a headline, it is the source's masthead, whose
    # headline is under it; of a headline's length (such a headline on another page, a long site name), it stays the
    # title when nothing below reads as a headline.
    under_masthead = False
    set_aside: _TitleGuess | None = None
    at = _masthead_line(top, canon, guess.title, masthead) if guess is not None else None
    if at is not None and not _printed_again(doc, at, adjacent=(headline_long := units(at) >= HEADLINE_MIN_WORDS)):
        under_masthead, guess, set_aside = True, None, guess if headline_long else None
    if below is not None and (guess is None or guess.evidence == "shape"):
        found = _guess_title(doc, *below, known_title, config)
        if not (found is not None and (found.evidence in ("page-title", "metadata") or (
                guess is None and found.evidence == "repeat" and units(below[0][0]) >= HEADLINE_MIN_WORDS))):
            found = (_headline_under_masthead(doc, below[0], config, units, recurring, masthead, at)
                     if under_masthead and at is not None else None)
        if found is not None:
            guess = found
            top, canon = below
    guess = guess or set_aside
    if guess is None:
        return known_title
    if guess.page_title_line is not None:
        doc.remove(guess.page_title_line, PAGE_TITLE_RULE,
                   "page <title> with the site name; the headline below is kept as title")
    _remove_title_copies(doc, top, canon, guess.title, below)
    return guess.title


def _remove_title_copies(doc: _Lines, zone: list[int], canon: dict[int, str], title: str,
                         below: tuple[list[int], dict[int, str]] | None = None) -> None:
    """The title's first copy in ``zone`` moves to the `title` column; its other copies there go, and so do its
    copies in ``below`` (the zone under the source's template lines: the headline printed again under the menu)."""
    wanted = canonical_line(title)
    zones = [(zone, canon, "at the top")]
    if below is not None and below[0] != zone:
        zones.append((*below, "under the site's menu"))
    first_copy = True
    for lines, canonical, where in zones:
        for i in lines:
            if canonical[i] == wanted and i not in doc.removed:
                if first_copy:
                    doc.remove(i, TITLE_RULE, "the title: moved to the `title` column")
                    first_copy = False
                else:
                    doc.remove(i, TITLE_REPEAT_RULE, f"the title printed again {where}")


def _move_metadata(doc: _Lines, i: int, rule: Rule, metadata: dict[str, str],
                   declared: Mapping[str, str] | None = None) -> bool:
    """Move line ``i``'s value (the metadata rule's ``value`` group) to its column and remove the line; False,
    and the line stays, when the value is empty. A column the record declares (``declared``) keeps the record's
    value."""
    value = (rule.matches(doc.stripped[i]).group("value") or "").strip()
    if not value:
        return False
    column: str = rule.metadata_column  # type: ignore[assignment]
    if declared and declared.get(column):
        where = f"not moved: `{column}` is {declared[column]!r}, given with the input"
    else:
        kept = metadata.setdefault(column, value)  # the first value found is the column's
        where = (f"moved to `{column}`: {value!r}" if kept == value
                 else f"not moved: `{column}` is {kept!r}, found above")
    doc.remove(i, rule.id, f"{rule.why} ({where})")
    return True


# A cut_rest marker cuts only below article text: a line of at least this many words above it, and at least this
# share of the document's words (those still in the text) above it. A dek over the body above a comment count is
# neither; a short article above a long thread is kept whole and flagged (the cautious failure: junk kept, not text
# eaten).
CUT_NEEDS_WORDS_ABOVE = 10
CUT_NEEDS_SHARE_ABOVE = 0.05


def _text_above(doc: _Lines, marker: int, line_words: np.ndarray) -> bool:
    """Whether the lines still in the text above line ``marker`` hold article text (``CUT_NEEDS_*``)."""
    still = doc.alive()
    above = line_words[:marker][still[:marker]]
    total = int(line_words[still].sum())
    return bool(len(above)) and int(above.max()) >= CUT_NEEDS_WORDS_ABOVE and \
        int(above.sum()) >= CUT_NEEDS_SHARE_ABOVE * total


def apply_rules(doc: _Lines, program: RuleProgram, screened: Sequence[int],
                line_words: np.ndarray | None = None, declared: Mapping[str, str] | None = None) -> dict[str, str]:
    """Drop the lines that rule-pack rules match; return metadata values the rules extracted.

    ``screened``: the indices of the lines that passed ``program``'s screens, screened for a whole batch at
    once (:func:`_screen_batch`, :meth:`RuleProgram.screen_lines`); the rules are tried on those lines only.
    A line that a keep rule matches stays, whatever other rules match it. A ``cut_rest`` marker with too little text
    above it (:func:`_text_above`; ``line_words``: each line's word count) is a comment count under a byline or a
    dek, not the start of the comments: only the marker line goes, the document is flagged (``doc.held_back``),
    and the rules go on below it (a lower marker may cut). ``declared``: the metadata columns the record fills
    itself (see :func:`_move_metadata`).
    """
    metadata: dict[str, str] = {}
    if program.screen is None or not screened:
        return metadata
    # Each line's rank among the lines still in the text (its distance from the edges, for rule zones).
    alive = doc.alive()
    before = np.cumsum(alive) - alive
    n = int(before[-1] + alive[-1]) if len(alive) else 0
    hits = [(int(before[i]), i) for i in screened if i not in doc.removed]
    cut_from: tuple[int, Rule] | None = None
    inside_article = _article_interior(doc, line_words) if line_words is not None else None
    for rank, i in hits:
        line = doc.stripped[i]
        acting = _acting_rules(doc, program, i, rank, n, inside_article)
        if any(rule.action is Action.KEEP for rule in acting):
            doc.protected.add(i)  # a keep rule wins over every other rule, in any pack and in any order
            continue
        for rule in acting:
            if rule.action is Action.METADATA and rule.metadata_column:
                if not _move_metadata(doc, i, rule, metadata, declared):
                    continue  # "Region:" with nothing after it: no value to keep, so no match
            elif rule.action is Action.CUT_REST:
                if line_words is not None and not _text_above(doc, i, line_words):
                    doc.removed[i] = (i + 1, line, rule.id,
                                      f"{rule.why} (nothing below it was cut: too little text above this marker "
                                      f"(a line of {CUT_NEEDS_WORDS_ABOVE} words or more, and "
                                      f"{CUT_NEEDS_SHARE_ABOVE:.0%} of the words), so it is not where the article "
                                      "ends; row flagged low_confidence)")
                    doc.held_back = True
                else:
                    cut_from = (i, rule)
                    doc.remove(i, rule.id, rule.why)
            else:
                doc.remove(i, rule.id, rule.why)
            break
        if cut_from is not None:
            break
    if cut_from is not None:
        start, rule = cut_from
        for i in range(start + 1, len(doc.lines)):
            line = doc.stripped[i]
            if not line or i in doc.removed:
                continue
            if len(line) <= program.longest and program.screen.fullmatch(line) is not None and any(
                    found.action is Action.KEEP and found.in_zone(int(before[i]), n - 1 - int(before[i]))
                    for found in program.matching_rules(line)):
                doc.protected.add(i)  # a keep rule's line stays below the marker too
                continue
            # A metadata line below the marker ("Region: Mexico" under "Leave a Reply") still gives its value.
            if len(line) <= program.longest and program.screen.fullmatch(line) is not None and any(
                    found.action is Action.METADATA and found.metadata_column
                    and found.in_zone(int(before[i]), n - 1 - int(before[i]))
                    and _move_metadata(doc, i, found, metadata, declared) for found in program.matching_rules(line)):
                continue
            doc.remove(i, rule.id, f"after the marker on line {start + 1}: {rule.why}")
    return metadata


LEARNED_RULE = "learned.source-boilerplate"
MODEL_RULE = "learned.line-classifier"
TITLE_RULE = "structure.title"
TITLE_REPEAT_RULE = "structure.title-repeat"
PAGE_TITLE_RULE = "structure.page-title"


@dataclass(frozen=True, slots=True)
class TemplateCounts:
    """On how many of its source's documents each line of a document is (0: not counted), and on how many of them it
    stands among their first lines (``top_docs``: cleaners.boilerplate.TOP_LINES; 0 where counted by a version that
    did not count tops)."""

    n_docs: np.ndarray
    source_docs: int
    top_docs: np.ndarray | None = None

    def share_of_others(self) -> np.ndarray:
        """Per line: the share of the source's *other* documents it appears on."""
        if self.source_docs <= 1:
            return np.zeros(len(self.n_docs))
        return np.where(self.n_docs > 0, (self.n_docs - 1) / (self.source_docs - 1), 0.0)


def template_counts(keys: np.ndarray, countable: np.ndarray, source: str, stats: LineStats | None,
                    config: CleanConfig, fingerprint: int | None = None) -> TemplateCounts | None:
    """Each line's count among its source's documents, looked up once per document (the template step
    and the classifier's template-share feature both use it). None for small or unknown sources.

    ``fingerprint`` (cleaners.boilerplate.fingerprint of the document's text): when the counts hold this very
    document more than once (copies in several shards or runs), its extra copies are taken off its lines and off
    the source's total. Otherwise a re-scraped article's paragraphs were on "50% of 8 documents" of a source
    holding 4 copies of it, and went as template. (Copies of *other* documents still count: the tables do not
    say which lines they hold.)
    """
    if stats is None:
        return None
    extra = stats.times_counted(source, fingerprint) - 1 if fingerprint is not None else 0
    total = stats.source_docs.get(source, 0) - extra
    if total < config.min_source_docs:
        return None
    n_docs = np.where(countable, stats.n_docs(source, keys), 0)
    top_docs = np.where(countable, stats.top_docs(source, keys), 0) if source in stats.tops else None
    if extra > 0:
        n_docs = np.where(n_docs > 0, np.maximum(n_docs - extra, 1), 0)
        if top_docs is not None:
            top_docs = np.where(top_docs > 0, np.maximum(top_docs - extra, 1), 0)
    return TemplateCounts(n_docs, total, top_docs)


def template_lines(counts: TemplateCounts, config: CleanConfig, nonblank: np.ndarray) -> np.ndarray:
    """Mask of the lines with text that recur on a large share of their source's documents (its page template)."""
    return (counts.n_docs >= max(2, config.min_template_docs)) & \
        (counts.n_docs >= config.boilerplate_share * counts.source_docs) & nonblank


# A template line is the source's masthead (its name, a section banner: never an article's title) when it stands at
# the top of at least this share of the pages it is on. A headline that the source's other pages link to ("Most
# read", a template line too) is at the top of its own page only.
MASTHEAD_TOP_SHARE = 0.5


def masthead_lines(counts: TemplateCounts, template: np.ndarray) -> np.ndarray | None:
    """Mask of the ``template`` lines that are the source's masthead: at the top of ``MASTHEAD_TOP_SHARE`` of the
    pages they are on (its name, a section banner; also a headline shown at the top of the other pages, in a
    "Trending" bar or a short page's "Most read" list, which :func:`take_title` tells by its page printing it again
    and by its length). None when the counts do not say where lines stand (tables of an older version)."""
    if counts.top_docs is None:
        return None
    return template & (counts.top_docs >= MASTHEAD_TOP_SHARE * counts.n_docs)


def remove_source_boilerplate(doc: _Lines, source: str, counts: TemplateCounts, config: CleanConfig,
                              template: np.ndarray | None = None) -> None:
    """Drop lines that recur on a large share of this source's documents (its page template; ``template``: its
    mask, :func:`template_lines`, when the caller has it).

    The lines are chosen with array masks and each reason is written once per distinct count (a template
    has a few): per-line checks and formatting were 0.2 s of the dev set's cleaning."""
    common = (template_lines(counts, config, doc.nonblank) if template is None else template).copy()
    if doc.removed:
        common[list(doc.removed)] = False
    if doc.protected:
        common[list(doc.protected)] = False
    chosen = np.flatnonzero(common)
    if not len(chosen):
        return
    reasons = {n: f"on {n / counts.source_docs:.0%} of {counts.source_docs} documents of source {source!r}: "
                  "part of its page template" for n in np.unique(counts.n_docs[chosen]).tolist()}
    lines = chosen.tolist()
    # The records built by C-level zip and map: a generator expression per line was 0.12 s of the dev set's cleaning.
    doc.removed.update(zip(lines, zip((chosen + 1).tolist(), map(doc.stripped.__getitem__, lines),
                                      itertools.repeat(LEARNED_RULE),
                                      map(reasons.__getitem__, counts.n_docs[chosen].tolist()), strict=False),
                           strict=True))


class Caution(IntEnum):
    """How sure the classifier must be to drop a line; each level drops a subset of the one before."""

    NORMAL = 0        # the model's own threshold
    CAUTIOUS = 1      # when much of a document would go on uncertain evidence
    CONSERVATIVE = 2  # the safety valve: the document would be eaten


class Judgement(Protocol):
    probabilities: Sequence[np.ndarray]  # junk probability of every line of every document

    def explain_many(self, doc_indices: np.ndarray, line_indices: np.ndarray) -> list[str]:
        """The reason for each named (document, line): the model, p(junk) and the features that decided.
        One call per batch."""
        ...


class LineJudge(Protocol):
    """A learned line classifier, scored on whole batches of documents at once (vectorized)."""

    version: str

    def judge(self, docs: Sequence[Sequence[str]], template_share: Sequence[Sequence[float] | np.ndarray],
              stripped: bool = False, utf8: LineBytes | None = None) -> Judgement:
        """Judge every line of every document (blank lines included); ``stripped``: the lines are stripped.
        ``utf8``: the same stripped lines, end to end, as UTF-8 bytes, for a judge that reads bytes."""
        ...

    def decide(self, probabilities: np.ndarray, caution: Caution) -> np.ndarray:
        """Which lines to drop (a boolean mask) at the threshold of this level of caution."""
        ...


@dataclass(frozen=True, slots=True)
class DocumentInput:
    text: str
    source: str = "unknown"
    known_title: str | None = None
    # True: the input declares ``known_title`` (a record's field): no line is guessed to be the title. False: it is
    # the page's own metadata (an HTML <title> or og:title, which may differ from the headline printed in the text).
    title_declared: bool = True
    # Metadata columns the input itself fills (a record's ``author`` field, a page's author metadata): a metadata
    # rule's line still goes, but its value does not replace the input's, and the removal's reason says so.
    declared_metadata: Mapping[str, str] | None = None


@dataclass(slots=True)
class _Prepared:
    doc: _Lines
    title: str | None
    metadata: dict[str, str]
    explicit: dict[int, Removal]
    normalized: str
    mojibake_fixed: bool
    source: str
    template: TemplateCounts | None
    line_words: np.ndarray  # words of each line of the normalized text (kernels.line_word_units)


def _screen_batch(programs: Sequence[RuleProgram], data: np.ndarray, stripped: tuple[np.ndarray, ...],
                  sizes: np.ndarray, removed: np.ndarray) -> list[list[int]]:
    """Per document, the lines that passed its rule program's screen (:meth:`RuleProgram.screen_lines`),
    screened once per program over the batch's bytes (``stripped``: its lines' bounds without the spaces at
    their edges, code points and lone surrogates, as :func:`cleaners.kernels.strip_spaces` gives them).

    A zone rule's zone counts the lines still in the text; only the title step has removed lines before
    the rules run, so a line within ``zone_reach + removed`` non-blank lines of an edge is a candidate
    (a superset of the lines any zone reaches: removing lines only brings lines closer to the edges).
    """
    starts, ends, chars, surrogate = stripped
    doc_of = np.repeat(np.arange(len(sizes)), sizes)
    first_line = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    nonblank = chars > 0
    seen = np.cumsum(nonblank)
    before_doc = np.concatenate([[0], seen])[first_line][doc_of]
    rank_from_top = seen - nonblank - before_doc
    nonblank_lines = np.bincount(doc_of, weights=nonblank, minlength=len(sizes)).astype(np.int64)[doc_of]
    rank_from_bottom = nonblank_lines - 1 - rank_from_top
    screened: list[list[int]] = [[] for _ in programs]
    by_program: dict[int, list[int]] = {}
    for index, program in enumerate(programs):
        by_program.setdefault(id(program), []).append(index)
    for members in by_program.values():
        program = programs[members[0]]
        if program.screen is None:
            continue
        mine = np.isin(doc_of, members) if len(members) < len(programs) else np.ones(len(doc_of), bool)
        reach = program.zone_reach + removed[doc_of]
        near_edge = mine & ((rank_from_top < reach) | (rank_from_bottom < reach))
        passed = program.screen_lines(data, starts, ends, np.where(mine, chars, 0), surrogate & mine, near_edge)
        hits = np.flatnonzero(passed)
        for doc, line in zip(doc_of[hits].tolist(), (hits - first_line[doc_of[hits]]).tolist(), strict=True):
            screened[doc].append(line)
    return screened


def _prepare_batch(items: Sequence[DocumentInput], rules: RuleSet, config: CleanConfig, line_stats: LineStats | None,
                   line_keys: KeyedTexts | None = None) -> tuple[list[_Prepared], LineBytes | None]:
    """The explicit steps: characters, title, rule packs, then learned per-source template lines.

    The rule packs' screen runs once per batch and rule program over all lines (vectorized); the
    per-rule checks run only on the few lines that pass it. Also returns the batch's lines, stripped, as
    UTF-8 (what the line classifier reads).
    """
    if not items:
        return [], None
    docs: list[_Lines] = []
    titles: list[str | None] = []
    normalized_texts: list[tuple[str, bool]] = []
    programs = [rules.program_for(item.source) for item in items]
    for item in items:
        normalized = normalize_characters(item.text)
        docs.append(_Lines.of(normalized[0]))
        normalized_texts.append(normalized)
    # The batch's normalized text as one UTF-8 buffer: the screen and the word counts read it in place.
    sizes = np.fromiter((len(doc.lines) for doc in docs), np.int64, len(docs))
    data = np.frombuffer(textbytes.join([normalized for normalized, _ in normalized_texts]), np.uint8)
    line_starts, line_ends = textbytes.line_bounds(data)
    word_counts = np.split(kernels.line_word_units(data, line_starts, line_ends, kernels.CHAR_CLASSES),
                           np.cumsum(sizes)[:-1])
    stripped = kernels.strip_spaces(data, line_starts, line_ends)
    # Screened before the title step, which removes at most the title zone's lines: edge lines that far in
    # are screened too (a superset; the rules check their zones on the lines as they stand).
    screened = _screen_batch(programs, data, stripped, sizes,
                             np.full(len(docs), max(config.title_zone_lines, 2), np.int64))
    for doc, (first, last) in zip(docs, itertools.pairwise(np.cumsum([0, *sizes.tolist()]).tolist()), strict=True):
        doc.encoded = (data, line_starts[first:last], line_ends[first:last])
    # The rules each screened line matches, found per program for the whole batch (RuleProgram.match_lines).
    screened_lines: dict[int, list[str]] = {}
    for doc, program, hits in zip(docs, programs, screened, strict=True):
        screened_lines.setdefault(id(program), []).extend(map(doc.stripped.__getitem__, hits))
    for program in {id(program): program for program in programs}.values():
        program.match_lines(screened_lines.get(id(program), ()))
    # Template evidence: keys of the lines as pass 1 saw them (newlines normalized only); normalization
    # keeps the lines where they are, so line i is the same line in both. Looked up before the title step, which
    # looks for the headline below the template's lines too (take_title).
    keyed: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(items)
    fingerprints: list[int | None] = [None] * len(items)
    if line_stats is not None:
        if line_keys is None:
            line_keys = KeyedTexts.of([item.text for item in items])
        elif len(line_keys.pieces) != len(items):
            raise ValueError(f"line_keys holds {len(line_keys.pieces)} texts for {len(items)} documents")
        keyed = list(line_keys.per_text())
        if line_stats.copies:
            fingerprints = line_keys.fingerprints().tolist()
    templates: list[TemplateCounts | None] = []
    masks: list[np.ndarray | None] = []
    for item, doc, doc_keys, doc_fingerprint in zip(items, docs, keyed, fingerprints, strict=True):
        template = None
        if doc_keys is not None and len(doc_keys[0]) == len(doc.lines):
            template = template_counts(*doc_keys, item.source, line_stats, config, doc_fingerprint)
        templates.append(template)
        masks.append(template_lines(template, config, doc.nonblank) if template is not None else None)
    for item, doc, program, hits, mask, template, line_words in zip(items, docs, programs, screened, masks, templates,
                                                                    word_counts, strict=True):
        mastheads = masthead_lines(template, mask) if template is not None and mask is not None else None
        titles.append(take_title(doc, item.known_title, config, program, hits, declared=item.title_declared,
                                 template=mask, masthead=mastheads, words=line_words,
                                 recurring=template.n_docs >= 2 if template is not None else None))
    prepared = []
    for item, doc, title, program, hits, (normalized, fixed), template, mask, line_words in zip(
            items, docs, titles, programs, screened, normalized_texts, templates, masks, word_counts, strict=True):
        metadata = apply_rules(doc, program, hits, line_words, item.declared_metadata)
        explicit = dict(doc.removed)
        if template is not None:
            remove_source_boilerplate(doc, item.source, template, config, mask)
        prepared.append(_Prepared(doc, title, metadata, explicit, normalized, fixed, item.source, template,
                                  line_words))
    return prepared, LineBytes(data, stripped[0], stripped[1])


def _template_share(prepared: _Prepared) -> np.ndarray:
    """Per line: the share of the source's *other* documents it appears on (0 for small sources).

    The classifier was trained with this feature computed within the training batch; here it comes
    from the run's and earlier runs' counts, so a daily batch of ten still sees the template.
    """
    if prepared.template is None:
        return np.zeros(len(prepared.doc.lines))
    return prepared.template.share_of_others()


def _laid_out_text(doc: _Lines) -> str:
    """The lines not removed, laid out: trailing spaces out, one blank line between paragraphs, none at the
    edges. One compiled pass over the text's bytes (cleaners.kernels.lay_out): joining the kept lines in
    Python was two thirds of the final step on the dev set."""
    removed = np.zeros(len(doc.lines), bool)
    if doc.removed:
        removed[list(doc.removed)] = True
    data, starts, ends = doc.utf8()
    return kernels.lay_out(data, starts, ends, removed).tobytes().decode("utf-8", "surrogatepass")


@dataclass(frozen=True, slots=True)
class _LearnedDrops:
    """The classifier's drops in one document at its normal threshold: the lines, each one's most cautious
    :class:`Caution` level that still drops it, and their removal records."""

    lines: np.ndarray    # int64 line indices, ascending
    levels: np.ndarray   # int8 Caution values
    removals: list[Removal]
    # Whether the classifier is sure of some line still in the text (p at the cautious threshold or above, before
    # short-sentence smoothing; not a line a keep rule or a pipe table spares).
    sure_of_some: bool = True

    def at_least(self, level: int) -> dict[int, Removal]:
        """The removals of the lines dropped at ``level`` and every more cautious one."""
        chosen = self.levels >= level
        return dict(zip(self.lines[chosen].tolist(), itertools.compress(self.removals, chosen.tolist()),
                        strict=True))


# The steps that take a line out without calling it junk: the title moved to its column, and its copies.
_TITLE_STEPS = frozenset({TITLE_RULE, TITLE_REPEAT_RULE, PAGE_TITLE_RULE})


def _only_uncertain_evidence(prepared: _Prepared, learned: _LearnedDrops) -> bool:
    """Whether the classifier's drops are the document's only evidence of junk, and all of them uncertain: no rule
    and no learned template line took anything out, and the classifier is sure of no line (``sure_of_some``). Such
    a document reads as an article with no page furniture around it (a feed's body, a text export), and its
    uncertain drops as short article lines: a list's last items, a media contact, a verdict heading
    (tests/clean_articles). Whole scraped pages have furniture somewhere: on the dev set's out-of-fold
    probabilities (scripts/training/eval_oof.py, the classifier alone), keeping the uncertain drops of the pages
    with no line at the cautious threshold cost 0.0002 (raw_text) and 0.0003 (raw_text_alt) of F1, no catastrophic
    document; the cleaner changed 60 and 40 dev pages."""
    if learned.sure_of_some:
        return False
    return len(prepared.doc.removed) == len(prepared.explicit) and \
        all(removal[2] in _TITLE_STEPS for removal in prepared.explicit.values())


def _finalize(prepared: _Prepared, config: CleanConfig, learned: _LearnedDrops | None = None) -> CleanResult:
    """Apply the learned removals at the level of caution the document needs (uncertainty and safety
    valves), then lay out. ``learned``: the classifier's drops (its candidates are lines still in the text)."""
    doc = prepared.doc
    line_words = prepared.line_words
    all_words = int(line_words.sum())

    def words_of(indices: Iterable[int]) -> int:
        return int(line_words[list(indices)].sum())

    # The title's words, when it was taken out of the text (a declared title absent from it has none here).
    total_words = all_words - words_of(i for i, removal in prepared.explicit.items() if removal[2] == TITLE_RULE)
    # The words of the title's copies (a page <title>, the headline printed again): out of the text, but not text the
    # safety valve guards, so they count as kept there. Otherwise a headline's second copy found as such tipped a short
    # article under a long page template over the valve's edge, and every template line came back.
    copies = words_of(i for i, removal in prepared.explicit.items()
                      if removal[2] in _TITLE_STEPS and removal[2] != TITLE_RULE)
    low_confidence = doc.held_back
    # Which valve acted, for the removals it undid (CleanResult.spared_rows). The safety valve replaces doc.removed:
    # this keeps the dict with the template lines' removals.
    valve = ""
    before_valves = doc.removed
    if learned is not None and len(learned.lines):
        uncertain_words = int(line_words[learned.lines[learned.levels == Caution.NORMAL]].sum())
        floor = Caution.NORMAL
        if uncertain_words > config.max_uncertain_share * total_words:
            floor = Caution.CAUTIOUS
            valve = (f"kept by the uncertainty valve: the classifier's uncertain drops held "
                     f"{uncertain_words / max(total_words, 1):.0%} of the words (over "
                     f"{config.max_uncertain_share:.0%})")
        elif _only_uncertain_evidence(prepared, learned):
            floor = Caution.CAUTIOUS
            valve = ("kept by the uncertainty valve: the classifier's uncertain drops were the document's only "
                     "evidence of junk (no rule or template line, no line it is sure of)")
        doc.removed.update(learned.at_least(floor))
    # Words never span lines, so the kept text's words are all words minus the removed lines' words.
    # Layout changes no words: this is the clean text's count.
    kept_words = all_words - words_of(doc.removed)
    if len(doc.removed) > len(prepared.explicit) and total_words and \
            (kept_words + copies) / total_words < config.min_kept_share:
        # The learned steps would eat the document: keep the conservative result and say so; when even
        # that would eat it, only the rule packs' removals.
        left = (kept_words + copies) / total_words
        valve = (f"kept by the safety valve: the learned steps would have left {left:.0%} of the words (under "
                 f"{config.min_kept_share:.0%}); row flagged low_confidence")
        low_confidence = True
        doc.removed = dict(prepared.explicit)
        if learned is not None:
            doc.removed.update(learned.at_least(Caution.CONSERVATIVE))
        kept_words = all_words - words_of(doc.removed)
        if len(doc.removed) > len(prepared.explicit) and (kept_words + copies) / total_words < config.min_kept_share:
            doc.removed = dict(prepared.explicit)
            kept_words = all_words - words_of(doc.removed)
    if total_words and (kept_words + copies) / total_words < config.min_kept_share:
        # The rule packs' removals alone leave little (a prefix rule on paragraphs, a cut marker under a dek): they
        # are the rule writer's to fix, so they stay, but the row says it.
        low_confidence = True
    spared: tuple[tuple[int, str], ...] = ()
    if valve:  # the learned steps' lines (template, classifier), as they would have gone
        proposed = {k: v for k, v in before_valves.items() if k not in prepared.explicit}
        if learned is not None:
            proposed.update(zip(learned.lines.tolist(), learned.removals, strict=True))
        spared = tuple((row[0], f"{valve}; would have gone: [{row[2]}] {row[3]}")
                       for line, row in sorted(proposed.items()) if line not in doc.removed)
    clean = _laid_out_text(doc)
    return CleanResult(
        text=clean,
        title=prepared.title,
        metadata=prepared.metadata,
        removed_rows=tuple(map(doc.removed.__getitem__, sorted(doc.removed))),
        mojibake_fixed=prepared.mojibake_fixed,
        kept_ratio=kept_words / total_words if total_words > 0 else 0.0,
        low_confidence=low_confidence,
        spared_rows=spared,
    )


def _keep_sandwiched_sentences(stripped: Sequence[Sequence[str]], offsets: np.ndarray, alive: np.ndarray,
                               drop: np.ndarray, doc_of: np.ndarray) -> None:
    """Context smoothing (as in jusText): a short sentence the classifier would drop between two lines
    that stay is article text ("Good." between two paragraphs of a review), so it stays too.

    Vectorized over the lines still in the text (``alive``) of a batch of documents end to end (``doc_of``:
    each line's document, ``offsets`` each document's first line; ``stripped``: per document, its lines'
    text); sparing one line never makes its neighbour a candidate (that needs the neighbour kept already),
    so one pass equals the line-by-line rule."""
    kept = np.flatnonzero(alive)
    if len(kept) < 3:
        return
    dropped = drop[kept]
    owner = doc_of[kept]
    between = np.flatnonzero(dropped[1:-1] & ~dropped[:-2] & ~dropped[2:]
                             & (owner[:-2] == owner[1:-1]) & (owner[2:] == owner[1:-1])) + 1
    for here in kept[between].tolist():
        doc = int(doc_of[here])
        if _SENTENCE_FINAL.search(stripped[doc][here - int(offsets[doc])]):
            drop[here] = False


def _pipe_table_rows(stripped: Sequence[Sequence[str]], offsets: np.ndarray, doc_of: np.ndarray, alive: np.ndarray,
                     utf8: LineBytes | None) -> np.ndarray:
    """The lines (flat positions over the batch) still in the text that are rows of a pipe table, as
    :func:`cleaners.rulepack.in_pipe_table` defines one: a run of two or more adjacent lines with the same number
    of cells (at least 3), one of them with figures in every cell after the first or all of them categorical rows
    (:func:`cleaners.rulepack.categorical_rows`), or a line of labelled values.
    Each run is walked once (a per-row check rescans its table: quadratic in its rows), and only lines with two
    pipes or more, found from the batch's bytes (``utf8``: the stripped lines end to end), are looked at."""
    found = np.zeros(len(alive), bool)
    if utf8 is None or not len(alive):
        return found
    # Each pipe lies inside its line's stripped bounds: the line of each pipe, counted (pipes are rare).
    at = np.searchsorted(utf8.starts, np.flatnonzero(utf8.data == ord("|")), side="right") - 1
    piped = np.flatnonzero(np.bincount(at, minlength=len(alive)) >= 2)
    lines = [stripped[doc][line] for doc, line in
             zip(doc_of[piped].tolist(), (piped - offsets[doc_of[piped]]).tolist(), strict=True)]
    # A line of labelled values ("Prep: 15 min | Cook: 1 hr | Serves: 6") is a table of its own.
    found[piped[[labelled_row(line) for line in lines]] if len(piped) else piped] = True
    if len(piped) < 2:
        return found & alive
    cells = np.array([pipe_cells(line) for line in lines], np.int64)
    # Runs: consecutive lines of one document with the same number of cells (3 or more).
    starts_run = np.ones(len(piped), bool)
    starts_run[1:] = ((piped[1:] != piped[:-1] + 1) | (doc_of[piped[1:]] != doc_of[piped[:-1]])
                      | (cells[1:] != cells[:-1]))
    bounds = [*np.flatnonzero(starts_run).tolist(), len(piped)]
    for first, last in itertools.pairwise(bounds):
        if last - first < 2 or cells[first] < 3:
            continue
        rows = piped[first:last]
        doc = int(doc_of[rows[0]])
        texts = [stripped[doc][int(row - offsets[doc])] for row in rows]
        if any(data_row(text) for text in texts) or categorical_rows(texts):
            found[rows] = True
    return found & alive


def clean_documents(
    items: Sequence[DocumentInput],
    rules: RuleSet,
    *,
    config: CleanConfig | None = None,
    line_stats: LineStats | None = None,
    judge: LineJudge | None = None,
    line_keys: KeyedTexts | None = None,
) -> list[CleanResult]:
    """Clean a batch of documents. The learned line classifier (``judge``) runs once over the batch.

    Order of steps per document: characters, title, rule packs, learned per-source template lines,
    the line classifier on what is left, the uncertainty and safety valves, layout. Every removal names
    its rule. ``line_keys``: the items' texts keyed as pass 1 keyed them (``KeyedTexts.of``), when the caller
    has them (else they are keyed here for ``line_stats``).
    """
    config = config or CleanConfig()
    prepared, utf8 = _prepare_batch(items, rules, config, line_stats, line_keys)
    if judge is None:
        return [_finalize(p, config) for p in prepared]
    docs = [p.doc.stripped for p in prepared]
    shares = [_template_share(p) for p in prepared]
    judgement = judge.judge(docs, shares, stripped=True, utf8=utf8)
    # The decisions for the whole batch at once, over its lines end to end.
    sizes = np.fromiter((len(p.doc.lines) for p in prepared), np.int64, len(prepared))
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    doc_of = np.repeat(np.arange(len(prepared)), sizes)
    probabilities = np.concatenate([np.zeros(0), *judgement.probabilities])
    alive = np.concatenate([np.zeros(0, bool), *(p.doc.nonblank for p in prepared)])
    for index, p in enumerate(prepared):
        if p.doc.removed:
            alive[offsets[index] + np.fromiter(p.doc.removed, np.int64, len(p.doc.removed))] = False
    # The drops at each level of caution, each smoothed on its own: at a more cautious level more lines stay,
    # so a short sentence may be sandwiched between kept lines there and not at the level below. The rows of a
    # pipe table (figures under a header) are article content the classifier misjudges line by line: they stay,
    # as do the lines a keep rule protects.
    spared = _pipe_table_rows(docs, offsets, doc_of, alive, utf8)
    for index, p in enumerate(prepared):
        if p.doc.protected:  # and the lines of keep rules
            spared[offsets[index] + np.fromiter(p.doc.protected, np.int64, len(p.doc.protected))] = True
    drops = []
    for level in Caution:
        drop = judge.decide(probabilities, level)
        drop[spared] = False
        _keep_sandwiched_sentences(docs, offsets, alive, drop, doc_of)
        drops.append(drop)
    flat_candidates = np.flatnonzero(alive & drops[Caution.NORMAL])
    sure = np.bincount(doc_of, weights=alive & ~spared & judge.decide(probabilities, Caution.CAUTIOUS),
                       minlength=len(prepared)) > 0
    # Levels nest: a line dropped at a level is dropped at the one below. It is not a sentence between two
    # lines that stay there: not sentence-final, at a document's edge, or next to a line dropped there, which
    # the level below drops too; so the level below does not spare it either.
    flat_levels = (drops[Caution.CAUTIOUS][flat_candidates].astype(np.int8)
                   + drops[Caution.CONSERVATIVE][flat_candidates])
    owner = doc_of[flat_candidates]
    # One explanation call for the whole batch (attributions and their text are vectorized).
    reasons = iter(judgement.explain_many(owner, flat_candidates - offsets[owner]))
    bounds = np.searchsorted(owner, np.arange(len(prepared) + 1)).tolist()
    decisions = [(flat_candidates[a:b] - offsets[index], flat_levels[a:b])
                 for index, (a, b) in enumerate(itertools.pairwise(bounds))]
    results = []
    for p, (candidates, level), sure_of_some in zip(prepared, decisions, sure.tolist(), strict=True):
        lines = candidates.tolist()
        removals = list(zip((candidates + 1).tolist(), map(p.doc.stripped.__getitem__, lines),
                            itertools.repeat(MODEL_RULE), itertools.islice(reasons, len(lines))))
        results.append(_finalize(p, config, _LearnedDrops(candidates, level, removals, sure_of_some)))
    return results


def clean_document(
    text: str,
    rules: RuleSet,
    *,
    source: str = "unknown",
    known_title: str | None = None,
    title_declared: bool = True,
    declared_metadata: Mapping[str, str] | None = None,
    config: CleanConfig | None = None,
    line_stats: LineStats | None = None,
    judge: LineJudge | None = None,
) -> CleanResult:
    """Clean one article's text with the rules that apply to its ``source`` (see :func:`clean_documents`).

    ``line_stats``: per-source line counts from pass 1 (and earlier runs); without them the learned
    per-source step does not run. ``declared_metadata``: the metadata the input itself gives (a record's
    ``author``), as :class:`DocumentInput` has it.
    """
    return clean_documents([DocumentInput(text, source, known_title, title_declared, declared_metadata)], rules,
                           config=config, line_stats=line_stats, judge=judge)[0]
