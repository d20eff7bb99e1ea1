"""Junk-line rule packs: TOML data files, validated once into immutable, compiled rules.

A pack is a versioned TOML file of rules grouped by concept (the README's "Rule packs" section says how to write one).
The generic pack applies to every source; a site pack lists the sources (hosts) it applies to.
Loading validates everything up front: unknown keys, duplicate ids, empty patterns, bad regexes
and missing examples are errors that name the file and the rule, so a broken pack never reaches a run.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import re2

from cleaners import kernels, textbytes
from cleaners.normalize import replace_odd_characters

DEFAULT_RULES_DIR = Path(__file__).parent / "rules"
METADATA_COLUMNS = frozenset({"region", "author"})
_MEMO_LIMIT = 200_000
# Lines per Arrow call of the screen (bounded work per call; <= 1,200 bytes each).
_SCREEN_ROWS = 1_000_000
# The RE2 program sizes (instructions) a rule program's two combined screens stay under: every line goes through the
# "anywhere" screen, the lines near a document's edges through the "near_edges" one. The shipped packs' are ~4,200
# and ~12,800 (tests/test_rulepacks.py pins them under these). A counted repeat copies its pattern once per count: one
# top-zone rule with `[\p{L} .\-]{3,40}?` (\p{L} alone is ~1,200 instructions) made the near-edges screen 60,793
# instructions (`[\p{L} .\-]+`: 1,207; `[A-Za-z .\-]{3,40}?`: 364). Each batch compiles its screens again: cleaning
# 100 dev pages one call each took 2.7-3.2x as long (in batches of 300, no difference), and on some pages RE2 ran out
# of DFA memory, printed "DFA out of memory" to stderr and fell back to a slower matcher. Counted repeats inside
# repeats in an anywhere rule made the whole cleaner ~30% slower at 25,037 instructions.
SCREEN_PROGRAM_LIMITS = {"anywhere": 8_000, "near_edges": 20_000}
# Arrow compiles each screen with RE2's default memory (8 MiB), and a combined program past a few thousand instructions
# outgrows its DFA there and falls back to a slower matcher: the shipped near-edges screen (12,800 instructions) took
# 0.30-0.37 s over the dev set's 94,000 edge lines at once, its rules in two groups (legal.copyright, 8,752, alone) 0.14
# s. The rules of a screen are grouped in their order up to this size, one Arrow call per group.
SCREEN_GROUP_INSTRUCTIONS = 4_096
_WHITESPACE = re.compile(r"\s+")


class RulePackError(ValueError):
    """A rule pack that cannot be loaded; the message names the file, the rule and the fix."""


class Match(StrEnum):
    LINE = "line"      # the pattern must cover the whole (stripped) line
    PREFIX = "prefix"  # the line must start with the pattern
    SUFFIX = "suffix"  # the line must end with the pattern


class Zone(StrEnum):
    ANY = "any"        # anywhere in the document
    TOP = "top"        # among the first `zone_lines` non-blank lines
    BOTTOM = "bottom"  # among the last `zone_lines` non-blank lines
    EDGES = "edges"    # top or bottom zone


class Action(StrEnum):
    DROP = "drop"          # remove the line
    METADATA = "metadata"  # remove the line, keep its `value` group in a metadata column
    CUT_REST = "cut_rest"  # remove the line and every line after it (comment sections)
    KEEP = "keep"          # the line is article text: no other rule, the template step or the classifier removes it


def _alternatives(rules: Sequence[Rule]) -> str:
    """One regex that matches where any of ``rules``' anchored patterns does."""
    return "|".join(f"(?:{rule.anchored})" for rule in rules)


def _utf8_encodable(line: str) -> bool:
    """Whether ``line`` is valid Unicode text (no lone surrogates), so that it has a UTF-8 form."""
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def canonical_line(line: str) -> str:
    """Case-folded, whitespace-collapsed form used for literal comparisons and line counting."""
    return " ".join(line.split()).casefold()  # split/join: 3x faster than a regex sub on short lines


def pipe_cells(line: str) -> int:
    """How many cells a line written as a pipe-separated row has (outer pipes optional); 0 without a pipe."""
    return line.strip().strip("|").count("|") + 1 if "|" in line else 0


def data_row(line: str) -> bool:
    """A row whose cells after the first all hold a figure ("Q3 2024 | 3.3 million | €412m")."""
    cells = line.strip().strip("|").split("|")
    return all(any(ch.isdigit() for ch in cell) for cell in cells[1:])


# A cell of a labelled value: a short label, a colon, a value ("Cook: 1 hr 20 min", "Difficulty: Easy").
_LABELLED_CELL = re.compile(r"\s*[^\W\d][^:|]{0,24}:\s*\S[^|]*")


def labelled_row(line: str) -> bool:
    """A line of three or more pipe-separated cells that are all labelled values, one at least with a figure
    ("Prep: 15 min | Cook: 1 hr | Difficulty: Easy"): facts, not a menu (a menu's items are names, a colon in one at
    most: "Home | News | Live: Election 2024 | Weather")."""
    cells = line.strip().strip("|").split("|")
    return len(cells) >= 3 and all(_LABELLED_CELL.fullmatch(cell) for cell in cells) and \
        any(ch.isdigit() for ch in line)


def categorical_rows(rows: Sequence[str]) -> bool:
    """Three or more different rows, keyed by a first column of different values, in which another column repeats a
    value without holding one value throughout ("Street | Old day | New day" rows with "Monday" twice): data, since a
    menu never lists one link twice in the same position. Menus fail one test or another: a menu printed again is
    one row (rows compared by their cells, case and spacing aside), breadcrumb trails share their first item ("Home"),
    and a "More" at the end of every row of a footer menu is the same value throughout."""
    split = list(dict.fromkeys(tuple(" ".join(c.split()).lower() for c in r.strip().strip("|").split("|"))
                               for r in rows))
    if len(split) < 3 or len({cells[0] for cells in split}) < len(split):
        return False
    for col in range(1, len(split[0])):
        values = [cells[col] for cells in split if col < len(cells) and cells[col]]
        if len(values) != len(set(values)) and len(set(values)) > 1:
            return True
    return False


def in_pipe_table(stripped: Sequence[str], index: int) -> bool:
    """Whether line ``index`` of a document (its stripped lines) is a row of a table written with pipes: it and
    the lines next to it (no blank line between) have the same number of cells, at least 3, there are at
    least two such rows, and one of them holds figures in every cell after the first, or the rows are
    :func:`categorical_rows`. A flattened menu is one line, or lines without figures; a table of results has a
    header and rows of numbers. A line of labelled values (:func:`labelled_row`) is a table of its own."""
    cells = pipe_cells(stripped[index])
    if cells < 3:
        return False
    if labelled_row(stripped[index]):
        return True
    first = last = index
    while first > 0 and pipe_cells(stripped[first - 1]) == cells:
        first -= 1
    while last + 1 < len(stripped) and pipe_cells(stripped[last + 1]) == cells:
        last += 1
    return last > first and (any(data_row(stripped[i]) for i in range(first, last + 1))
                             or categorical_rows(stripped[first:last + 1]))


def pipe_table_rows(stripped: Sequence[str]) -> set[int]:
    """The lines of a document (its stripped lines) that :func:`in_pipe_table` calls table rows, found in one walk
    over its runs of lines with pipes: asking line by line rescans each run, quadratic in its length (a page of 4,000
    pipe-menu lines took 47 s). Only lines with a pipe can be rows, and a line without one ends a run."""
    piped = [i for i, line in enumerate(stripped) if "|" in line]
    cells = [pipe_cells(stripped[i]) for i in piped]
    rows: set[int] = set()
    first = 0
    while first < len(piped):
        last = first
        while last + 1 < len(piped) and piped[last + 1] == piped[last] + 1 and cells[last + 1] == cells[first]:
            last += 1
        if cells[first] >= 3:
            run = piped[first:last + 1]
            if last > first and (any(data_row(stripped[i]) for i in run)
                                 or categorical_rows([stripped[i] for i in run])):
                rows.update(run)
            else:
                rows.update(i for i in run if labelled_row(stripped[i]))
        first = last + 1
    return rows


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    pack: str
    concept: str
    why: str
    anchored: str  # the pattern as a full-line RE2 regex, with its match mode and case folding applied
    pattern: Any   # ``anchored``, compiled with RE2: linear-time matching, so no pattern can hang a run
    match: Match
    zone: Zone
    zone_lines: int
    max_chars: int
    action: Action
    metadata_column: str | None
    examples_drop: tuple[str, ...]
    examples_keep: tuple[str, ...]
    keep_table_rows: bool = False  # a line that is a row of a pipe table (:func:`in_pipe_table`) is not matched
    # a line inside the article's prose (cleaners.document._article_interior) is not matched: for labels that are also
    # headings ("Menu" above a restaurant review's dishes)
    spare_inside_article: bool = False

    def matches(self, line: str) -> Any:
        """The match when the stripped ``line`` matches this rule and its length limit (zone aside)."""
        line = line.strip()
        if len(line) > self.max_chars:
            return None
        return self.pattern.fullmatch(line)

    def in_zone(self, rank_from_top: int, rank_from_bottom: int) -> bool:
        """Whether a line at these 0-based non-blank ranks may be matched by this rule."""
        if self.zone is Zone.ANY:
            return True
        top = rank_from_top < self.zone_lines
        bottom = rank_from_bottom < self.zone_lines
        if self.zone is Zone.TOP:
            return top
        if self.zone is Zone.BOTTOM:
            return bottom
        return top or bottom


def _screen_groups(rules: Sequence[Rule]) -> tuple[tuple[str, int], ...]:
    """``rules`` in their order, grouped up to SCREEN_GROUP_INSTRUCTIONS of RE2 program each (a larger rule alone): each
    group's Arrow pattern and the longest line it may match."""
    groups: list[list[Rule]] = []
    size = 0
    for rule in rules:
        own = re2.compile(rule.anchored, _COMBINED).programsize
        if not groups or size + own > SCREEN_GROUP_INSTRUCTIONS:
            groups.append([])
            size = 0
        groups[-1].append(rule)
        size += own
    return tuple((f"^(?:{_alternatives(group)})$", max(rule.max_chars for rule in group)) for group in groups)


@dataclass(frozen=True, slots=True)
class RuleProgram:
    """The rules that apply to one source, with combined regexes that screen a batch's lines in a few calls.

    Measured on the dev set: trying each rule on each short line was 60% of cleaning time; one
    combined full-match per line, then the per-rule loop only on a hit, removes most of it. (A single
    multi-line ``finditer`` over the whole document was 3x slower: RE2 ran out of DFA memory.)
    The screen is split by zone: the rules that may match anywhere screen every short line, the rules
    held to a document's edges only the lines near them. The edge rules' patterns are the costly ones
    (``.{0,120}`` and pipe menus scan whole lines): screening all lines with them was 0.26 s of the dev
    set's cleaning, the split screens 0.06 s.
    """

    rules: tuple[Rule, ...]
    screen: Any  # all rules' patterns, compiled with RE2 (per-line use), or None when no rule applies
    longest: int
    anywhere: str | None = None   # the Arrow form (``^(?:...)$``) of the rules with zone "any"
    anywhere_longest: int = 0
    near_edges: str | None = None  # ... of the rules held to the top or bottom zone
    near_edges_longest: int = 0
    # The near-edge rules in groups of at most SCREEN_GROUP_INSTRUCTIONS (each group's Arrow pattern, longest line).
    near_edge_groups: tuple[tuple[str, int], ...] = ()
    zone_reach: int = 0            # the widest of those rules' zones, in non-blank lines
    arrow_patterns: tuple[str, ...] = ()  # each rule's pattern as Arrow's RE2 match takes it for a line
    _matching: dict[str, tuple[Rule, ...]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, rules: tuple[Rule, ...]) -> RuleProgram:
        if not rules:
            return cls((), None, 0)
        screen = re2.compile(_alternatives(rules), _COMBINED)
        anywhere = tuple(rule for rule in rules if rule.zone is Zone.ANY)
        near_edges = tuple(rule for rule in rules if rule.zone is not Zone.ANY)
        return cls(rules, screen, max(rule.max_chars for rule in rules),
                   anywhere=f"^(?:{_alternatives(anywhere)})$" if anywhere else None,
                   anywhere_longest=max((rule.max_chars for rule in anywhere), default=0),
                   near_edges=f"^(?:{_alternatives(near_edges)})$" if near_edges else None,
                   near_edges_longest=max((rule.max_chars for rule in near_edges), default=0),
                   near_edge_groups=_screen_groups(near_edges),
                   zone_reach=max((rule.zone_lines for rule in near_edges), default=0),
                   arrow_patterns=tuple(f"^(?:{rule.anchored})$" for rule in rules))

    def screen_sizes(self) -> dict[str, int]:
        """The RE2 program size (instructions) of each of the two screens (see ``SCREEN_PROGRAM_LIMITS``)."""
        return {part: re2.compile(pattern).programsize
                for part, pattern in (("anywhere", self.anywhere), ("near_edges", self.near_edges)) if pattern}

    def screen_sizes_by_rule(self, part: str) -> list[tuple[int, str]]:
        """Each rule of one screen (``anywhere`` or ``near_edges``) with its own pattern's program size, largest
        first: where a screen's size comes from."""
        rules = [rule for rule in self.rules if (rule.zone is Zone.ANY) == (part == "anywhere")]
        return sorted(((re2.compile(rule.anchored).programsize, rule.id) for rule in rules), reverse=True)

    def screen_many(self, lines: Sequence[str]) -> np.ndarray:
        """Which of these stripped lines any rule could match, wherever they are (zones aside)."""
        if not lines:
            return np.zeros(0, bool)
        data = np.frombuffer("\n".join(lines).encode("utf-8", "surrogatepass"), np.uint8)
        return self.screen_lines(data, *kernels.strip_spaces(data, *textbytes.line_bounds(data)),
                                 np.ones(len(lines), bool))

    def screen_lines(self, data: np.ndarray, starts: np.ndarray, ends: np.ndarray, chars: np.ndarray,
                     surrogate: np.ndarray, near_edge: np.ndarray) -> np.ndarray:
        """Which lines ``data[starts[i]:ends[i]]`` (UTF-8, stripped, ``chars`` code points long) a rule could
        match: a rule that may match anywhere, or a zone rule when ``near_edge`` (a superset of the lines
        its zone can reach). One Arrow (RE2) call per group over the lines within its length limits, read
        straight from the batch's bytes: 4x faster than per-line calls with the memo on the dev set's
        813,000 lines, and no Python string per line. A line with a lone surrogate is not screened: it is not
        UTF-8, and RE2 cannot read it (the readers turn lone surrogates into U+FFFD; only a library caller can
        pass one)."""
        out = np.zeros(len(starts), bool)
        if self.screen is None or not len(starts):
            return out
        for pattern, limit, allowed in ((self.anywhere, self.anywhere_longest, None),
                                        *((group, longest, near_edge) for group, longest in self.near_edge_groups)):
            if pattern is None:
                continue
            wanted = (chars > 0) & (chars <= limit) & ~out
            if allowed is not None:
                wanted &= allowed
            rows = np.flatnonzero(wanted & ~surrogate)
            for first in range(0, len(rows), _SCREEN_ROWS):
                part = rows[first:first + _SCREEN_ROWS]
                array = textbytes.arrow_strings(*kernels.gather_lines(data, starts, ends, part))
                out[part[pc.match_substring_regex(array, pattern).to_numpy(zero_copy_only=False)]] = True
        return out

    def matching_rules(self, line: str) -> tuple[Rule, ...]:
        """The rules whose pattern and length limit match the stripped ``line``, in order, zones aside.

        Memoized (bounded): the lines that pass the screen are mostly template lines, repeated across a
        source's documents. :meth:`match_lines` fills the memo for a batch's lines at once."""
        found = self._matching.get(line)
        if found is None:
            if len(self._matching) >= _MEMO_LIMIT:
                self._matching.clear()
            found = self._matching[line] = tuple(rule for rule in self.rules if rule.matches(line) is not None)
        return found

    def match_lines(self, lines: Iterable[str]) -> None:
        """Memoize :meth:`matching_rules` for these stripped lines: one Arrow (RE2) call per rule over the
        distinct lines not memoized yet, each rule on the lines within its length limit.

        Per line and rule, the ``re2`` module's ``fullmatch`` (which also finds the spans of every group) was
        0.45 s of the dev set's cleaning under cProfile for ~7,000 screened lines; this is 0.14 s. A line with a lone
        surrogate (not UTF-8, so not for Arrow) is left to :meth:`matching_rules`."""
        todo = [line for line in dict.fromkeys(lines) if line not in self._matching]
        todo = [line for line in todo if line.isascii() or _utf8_encodable(line)]
        if not todo or not self.rules:
            return
        if len(self._matching) + len(todo) > _MEMO_LIMIT:
            self._matching.clear()
        array = pa.array(todo, pa.string())
        lengths = np.fromiter(map(len, todo), np.int64, len(todo))
        hits = np.zeros((len(self.rules), len(todo)), bool)
        for k, (rule, pattern) in enumerate(zip(self.rules, self.arrow_patterns, strict=True)):
            within = np.flatnonzero(lengths <= rule.max_chars)
            if not len(within):
                continue
            part = array if len(within) == len(todo) else array.take(pa.array(within))
            hits[k, within] = pc.match_substring_regex(part, pattern).to_numpy(zero_copy_only=False)
        line_of, rule_of = np.nonzero(hits.T)  # by line, then rule: each line's rules in order
        bounds = np.searchsorted(line_of, np.arange(len(todo) + 1)).tolist()
        found = [self.rules[k] for k in rule_of.tolist()]
        for j, line in enumerate(todo):
            self._matching[line] = tuple(found[bounds[j]:bounds[j + 1]])


@dataclass(frozen=True, slots=True)
class RulePack:
    name: str
    version: str
    sites: tuple[str, ...]  # empty: applies to every source
    path: str
    rules: tuple[Rule, ...]
    disable: tuple[str, ...] = ()  # ids of other packs' rules switched off for this pack's sites

    def applies_to(self, source: str) -> bool:
        if not self.sites:
            return True
        source = source.lower()
        return any(source == site or source.endswith("." + site) for site in self.sites)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """All loaded packs. Site packs come first so their rules win over generic ones."""

    packs: tuple[RulePack, ...]
    version: str  # ``name@version`` of every pack plus a digest of their content; in every output row
    _programs: dict[tuple[str, ...], RuleProgram] = field(default_factory=dict, compare=False, repr=False)

    def idle_site_packs(self, sources: Iterable[str]) -> list[RulePack]:
        """The site packs none of ``sources`` falls under: a typo in `sites`, or sources named otherwise (a folder not
        named like a host, a record's declared `source`)."""
        seen = set(sources)
        return [pack for pack in self.packs if pack.sites and not any(pack.applies_to(source) for source in seen)]

    def costly_screens(self) -> list[str]:
        """A warning for each rule program (the generic packs', each site's) whose screen is over its
        ``SCREEN_PROGRAM_LIMITS``, naming the rules that cost most: every run and check-rules say it. Each site of
        every site pack is checked (a source under two site packs combines them). A screen of the generic packs
        over its limit is said once, not again for every site."""
        found: list[str] = []
        no_site = "any.invalid"  # a source no site pack lists (.invalid is reserved): the generic packs' program
        generic = self.program_for(no_site).screen_sizes()
        generic_over = {part for part, size in generic.items() if size > SCREEN_PROGRAM_LIMITS[part]}
        seen: set[int] = set()
        for source in [no_site, *(site for pack in self.packs for site in pack.sites)]:
            program = self.program_for(source)
            if id(program) in seen:
                continue
            seen.add(id(program))
            where = "the generic packs" if source == no_site else f"{source}'s packs"
            for part, size in program.screen_sizes().items():
                if size <= SCREEN_PROGRAM_LIMITS[part] or (source != no_site and part in generic_over):
                    continue
                costly = ", ".join(f"{rule_id} ({cost:,})" for cost, rule_id in program.screen_sizes_by_rule(part)[:3])
                found.append(f"{where}: the {part.replace('_', '-')} screen compiles to {size:,} RE2 instructions "
                             f"(over {SCREEN_PROGRAM_LIMITS[part]:,}): small batches (explain, one page at a time) "
                             f"clean ~3x slower, and RE2 may print 'DFA out of memory'. Costliest rules: {costly}. "
                             "A counted repeat copies its pattern once per count: a Unicode class under one "
                             "([\\p{L} ]{3,40}) or repeats inside repeats are the usual causes; use + or .* and let "
                             "max_chars bound the line")
        return found

    def program_for(self, source: str) -> RuleProgram:
        """The compiled rules for ``source`` (memoized per set of applicable packs: pure, no I/O)."""
        packs = tuple(pack.name for pack in self.packs if pack.applies_to(source))
        program = self._programs.get(packs)
        if program is None:
            program = self._programs[packs] = RuleProgram.of(self.rules_for(source))
        return program

    def rules_for(self, source: str) -> tuple[Rule, ...]:
        packs = [pack for pack in self.packs if pack.applies_to(source)]
        disabled = {rule_id for pack in packs for rule_id in pack.disable}
        return tuple(rule for pack in packs for rule in pack.rules if rule.id not in disabled)

    def all_rules(self) -> tuple[Rule, ...]:
        return tuple(rule for pack in self.packs for rule in pack.rules)


_PACK_KEYS = {"name", "version", "description", "sites", "disable"}
_DEFAULT_KEYS = {"zone_lines", "max_chars"}
_RULE_KEYS = {
    "id", "concept", "why", "literal", "regex", "match", "zone", "zone_lines", "max_chars",
    "action", "metadata_column", "case_sensitive", "examples", "keep_table_rows", "spare_inside_article",
}


def _fail(path: Path, what: str) -> RulePackError:
    return RulePackError(f"{path}: {what}")


_WORD_CHAR = re.compile(r"\w")


_QUIET = re2.Options()
_QUIET.log_errors = False  # RE2 wrote each refusal to stderr in C++'s log format; the error says it once
# The combined pattern of a source's rules (RuleProgram.screen, matched line by line where a step asks): with RE2's
# default 8 MiB its DFA ran out of memory once a site pack took it past ~17,000 instructions, printed "DFA out of
# memory" to stderr on every document and fell back to a matcher 4x slower. The budget is a limit, not an allocation.
_COMBINED = re2.Options()
_COMBINED.log_errors = False
_COMBINED.max_mem = 64 << 20

# What RE2 refuses that Python's `re` reads: lookaround, backreferences by number or name, atomic groups (not when
# the parenthesis or backslash is itself escaped).
_UNSUPPORTED_BY_RE2 = re.compile(r"(?<!\\)(?:\(\?<?[=!]|\\[1-9]|\(\?P=\w+\)|\\k<\w+>|\(\?>)")


def as_cleaned_text(text: str) -> str:
    """``text`` as the cleaner sees an article's text: NFC, odd spaces (no-break, thin, tab) as spaces, invisible and
    control characters out. Patterns and examples are read so: "é" typed decomposed, a no-break space before a French
    colon or a zero-width space pasted with a literal could never match the text, while its examples passed."""
    return replace_odd_characters(unicodedata.normalize("NFC", text))


def _compile(path: Path, rule_id: str, spec: dict, case_sensitive: bool, match: Match) -> tuple[str, Any]:
    """The rule's full-line regex and its RE2 compilation.

    RE2 matches in linear time, so a user-written pattern can never backtrack catastrophically
    (a pipe-menu pattern with nested quantifiers once took 10 s on one line under Python's ``re``).
    RE2 has no backreferences or lookaround; patterns using them are refused here.
    """
    literal, regex = spec.get("literal"), spec.get("regex")
    if (literal is None) == (regex is None):
        raise _fail(path, f"rule {rule_id!r}: give exactly one of `literal` or `regex`")
    source = literal if literal is not None else regex
    key = "literal" if literal is not None else "regex"
    if not isinstance(source, str):
        raise _fail(path, f"rule {rule_id!r}: `{key}` must be a string, not {source!r}")
    cleaned = as_cleaned_text(source)
    if not cleaned.strip():
        invisible = " once read as text (it holds only invisible characters)" if source.strip() else ""
        raise _fail(path, f"rule {rule_id!r}: the pattern is empty{invisible}; an empty pattern would match every line")
    if cleaned != source and regex is not None:
        try:
            re2.compile(cleaned, _QUIET)
        except re2.error:
            raise _fail(path, f"rule {rule_id!r}: regex `{regex}` holds characters the cleaner removes from text "
                              "(zero-width or control characters) or changes (odd spaces, decomposed letters); write "
                              "the pattern without them") from None
    source = cleaned
    if literal is not None:
        literal = source
    else:
        regex = source
    body_source = source
    if literal is not None:
        # Literals match with any run of whitespace where the literal has one.
        body_source = r"\s+".join(re.escape(part) for part in literal.split())
    body = f"(?i:{body_source})" if not case_sensitive else f"(?:{body_source})"
    anchored = {Match.LINE: body, Match.PREFIX: f"{body}.*", Match.SUFFIX: f".*{body}"}[match]
    if literal is not None and match is Match.PREFIX and _WORD_CHAR.match(literal.strip()[-1]):
        # A prefix literal is a whole word: "Share" takes "Share this", not "Shares of Acme rose 5%".
        anchored = f"{body}(?:[^\\pL\\pN_].*)?"
    elif literal is not None and match is Match.SUFFIX and _WORD_CHAR.match(literal.strip()[0]):
        anchored = f"(?:.*[^\\pL\\pN_])?{body}"
    unsupported = _UNSUPPORTED_BY_RE2.search(source) if regex is not None else None
    if unsupported is not None:
        raise _fail(path, f"rule {rule_id!r}: regex `{regex}` uses `{unsupported.group()}`, which the RE2 engine "
                          "does not have (no lookaround, no backreferences: it matches in linear time); match the "
                          "text itself instead, or split the rule in two")
    try:
        return anchored, re2.compile(anchored, _QUIET)
    except re2.error as exc:
        detail = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        try:
            re.compile(source)  # Python's parser gives the clearer message for plain syntax errors
        except re.error as python_exc:
            detail = str(python_exc)
        raise _fail(path, f"rule {rule_id!r}: invalid regex `{regex}`: {detail}") from exc


def _enum(path: Path, rule_id: str, kind: type[StrEnum], value: str, key: str) -> StrEnum:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)  # type: ignore[attr-defined]
        raise _fail(path, f"rule {rule_id!r}: {key} = {value!r} is not one of: {allowed}") from None


def _parse_rule(path: Path, pack_name: str, spec: dict, defaults: dict, number: int) -> Rule:
    rule_id = spec.get("id")
    if rule_id is None:
        pattern = spec.get("literal", spec.get("regex"))
        raise _fail(path, f"rule {number} (a [[rules]] entry{f' with pattern {pattern!r}' if pattern else ''}) has no "
                          "`id`: give it one, as id = \"site.what-it-removes\"")
    if not isinstance(rule_id, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_.\-]*", rule_id):
        raise _fail(path, f"rule id {rule_id!r} must be lowercase letters, digits, '.', '-' or '_'")
    unknown = set(spec) - _RULE_KEYS
    if unknown:
        raise _fail(path, f"rule {rule_id!r}: unknown keys {sorted(unknown)}; allowed: {sorted(_RULE_KEYS)}")
    for key in ("concept", "why"):
        if not isinstance(spec.get(key), str) or not spec[key].strip():
            raise _fail(path, f"rule {rule_id!r}: `{key}` is required: say what the rule removes and why")
    action = _enum(path, rule_id, Action, spec.get("action", "drop"), "action")
    match = _enum(path, rule_id, Match, spec.get("match", "line"), "match")
    anchored, pattern = _compile(path, rule_id, spec, _flag(path, rule_id, spec, "case_sensitive"), match)  # type: ignore[arg-type]
    metadata_column = spec.get("metadata_column")
    if action is Action.METADATA:
        if metadata_column not in METADATA_COLUMNS:
            raise _fail(path, f"rule {rule_id!r}: metadata_column must be one of {sorted(METADATA_COLUMNS)}")
        if "value" not in (pattern.groupindex or {}):
            raise _fail(path, f"rule {rule_id!r}: a metadata rule needs a regex with a (?P<value>...) group")
    elif metadata_column is not None:
        raise _fail(path, f"rule {rule_id!r}: metadata_column is only for action = \"metadata\"")
    examples = spec.get("examples") or {}
    drop, keep = (examples.get("drop"), examples.get("keep")) if isinstance(examples, dict) else (None, None)
    if not drop or not keep:
        raise _fail(path, f"rule {rule_id!r}: add examples.drop and examples.keep (at least one each)")
    if not all(isinstance(examples, list) and all(isinstance(example, str) for example in examples)
               for examples in (drop, keep)):
        raise _fail(path, f"rule {rule_id!r}: examples.drop and examples.keep are lists of strings")
    zone = _enum(path, rule_id, Zone, spec.get("zone", "any"), "zone")
    zone_lines = _count(path, rule_id, "zone_lines", spec.get("zone_lines", defaults.get("zone_lines", 6)))
    if "zone_lines" in spec and zone is Zone.ANY:
        raise _fail(path, f"rule {rule_id!r}: zone_lines = {spec['zone_lines']!r} needs a zone (zone = \"top\", "
                          "\"bottom\" or \"edges\"); without one the rule matches anywhere")
    return Rule(
        id=rule_id,
        pack=pack_name,
        concept=spec["concept"],
        why=" ".join(spec["why"].split()),
        anchored=anchored,
        pattern=pattern,
        match=match,  # type: ignore[arg-type]
        zone=zone,  # type: ignore[arg-type]
        zone_lines=zone_lines,
        max_chars=_count(path, rule_id, "max_chars", spec.get("max_chars", defaults.get("max_chars", 200))),
        action=action,  # type: ignore[arg-type]
        metadata_column=metadata_column,
        examples_drop=tuple(map(as_cleaned_text, drop)),
        examples_keep=tuple(map(as_cleaned_text, keep)),
        keep_table_rows=_flag(path, rule_id, spec, "keep_table_rows"),
        spare_inside_article=_flag(path, rule_id, spec, "spare_inside_article"),
    )


def _count(path: Path, rule_id: str, key: str, value: object) -> int:
    """A positive whole number setting (``zone_lines``, ``max_chars``), from the rule or the pack's defaults."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(path, f"rule {rule_id!r}: {key} must be a whole number of at least 1, not {value!r}")
    return value


def _check_examples(path: Path, rule: Rule) -> None:
    """A rule must match each of its drop examples (a metadata rule with a value) and none of its keep
    examples: checked when any pack loads, so a site's own pack is held to them as the shipped ones are."""
    for example in rule.examples_drop:
        found = rule.matches(example)
        if found is None:
            # A case-sensitive rule (its body not wrapped in "(?i:") that would match ignoring case: say so.
            case = (" (case_sensitive = true: check the letter case)" if "(?i:" not in rule.anchored
                    and re2.compile(f"(?i){rule.anchored}").fullmatch(example.strip()) is not None else "")
            if len(example.strip()) > rule.max_chars:
                raise _fail(path, f"rule {rule.id!r}: its drop example {example!r} is {len(example.strip())} "
                                  f"characters, over the rule's max_chars = {rule.max_chars}: raise max_chars, or "
                                  "shorten the example")
            raise _fail(path, f"rule {rule.id!r}: does not match its drop example {example!r}{case}")
        if rule.action is Action.METADATA and not (found.group("value") or "").strip():
            raise _fail(path, f"rule {rule.id!r}: its drop example {example!r} gives an empty `value` group")
    if all(len(example.strip()) > rule.max_chars for example in rule.examples_keep):
        # A line over max_chars is kept whatever the pattern says: such examples test the limit, never the pattern.
        raise _fail(path, f"rule {rule.id!r}: every keep example is longer than max_chars = {rule.max_chars}, so none "
                          "tests the pattern (a line that long is kept whatever it says); add a keep example of at "
                          f"most {rule.max_chars} characters, a line the pattern must not take")
    for example in rule.examples_keep:
        # A table row is kept by a keep_table_rows rule where it stands; a lone example can only be a labelled row.
        if rule.matches(example) is not None and not (rule.keep_table_rows and labelled_row(example)):
            raise _fail(path, f"rule {rule.id!r}: matches its keep example {example!r}")


def _flag(path: Path, rule_id: str, spec: dict, key: str) -> bool:
    value = spec.get(key, False)
    if not isinstance(value, bool):
        raise _fail(path, f"rule {rule_id!r}: {key} must be true or false, not {value!r}")
    return value


# What a `sites` entry never is: a URL ("https://…"), a wildcard, or a host name with a path, a port or a trailing dot
# ("valleyherald.com/", "valleyherald.com:443", "valleyherald.com."). Other names are sources too: a record's
# declared "Acme Inc." or "Reuters: Business", a folder path "feeds/wire".
_NOT_A_SOURCE = re.compile(r"^[a-z][a-z0-9+.-]*:/|^/|[*?\\]|:\d+$|^(?:[a-z0-9-]+\.)+[a-z0-9-]+(?:/.*|\.)$",
                           re.IGNORECASE)


def load_pack(path: Path) -> RulePack:
    """Load and validate one TOML rule pack."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        hint = (" (write regexes in single quotes, regex = '\\s+': in double quotes TOML reads a backslash as an "
                "escape)" if "escape" in str(exc).lower() or "Unescaped" in str(exc) else
                " (a text value is quoted: why = \"...\"; a list is in brackets: sites = [\"example.com\"])"
                if "Invalid value" in str(exc) else "")
        raise _fail(path, f"cannot read rule pack: {exc}{hint}") from exc
    meta = data.get("pack")
    if not isinstance(meta, dict) or not meta.get("name") or not meta.get("version"):
        raise _fail(path, "missing [pack] table with `name` and `version`")
    if set(meta) - _PACK_KEYS:
        raise _fail(path, f"[pack]: unknown keys {sorted(set(meta) - _PACK_KEYS)}")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise _fail(path, f"[defaults] must be a table, not {defaults!r}")
    if set(defaults) - _DEFAULT_KEYS:
        raise _fail(path, f"[defaults]: unknown keys {sorted(set(defaults) - _DEFAULT_KEYS)}")
    for key, value in defaults.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _fail(path, f"[defaults]: {key} must be a whole number of at least 1, not {value!r}")
    if set(data) - {"pack", "defaults", "rules"}:
        raise _fail(path, f"unknown top-level tables {sorted(set(data) - {'pack', 'defaults', 'rules'})}")
    specs = data.get("rules", [])
    if not isinstance(specs, list) or not all(isinstance(spec, dict) for spec in specs):
        raise _fail(path, "`rules` must be a list of tables: write each rule under its own [[rules]] header (two "
                          "brackets), not [rules]")
    rules = tuple(_parse_rule(path, meta["name"], spec, defaults, number)
                  for number, spec in enumerate(specs, start=1))
    sites = meta.get("sites", [])
    if not isinstance(sites, list) or not all(isinstance(site, str) and site.strip() for site in sites):
        raise _fail(path, f"[pack]: sites must be a list of host names, as sites = [\"example.com\"], not {sites!r}")
    if "sites" in meta and not sites:
        # An empty list would make a site's pack apply to every source: leave `sites` out for a generic pack.
        raise _fail(path, "[pack]: sites = [] names no site; list the pack's host names, or leave `sites` out "
                          "for a pack that applies to every source")
    for site in sites:
        if _NOT_A_SOURCE.search(site.strip()):
            raise _fail(path, f"[pack]: sites entry {site!r} is not a source name: write a host as the `source` "
                              "column has it, as sites = [\"example.com\"] (no scheme, path, port, wildcard or "
                              "trailing dot; a pack for a host applies to its subdomains too)")
    disable = meta.get("disable", [])
    if not isinstance(disable, list) or not all(isinstance(rule_id, str) for rule_id in disable):
        raise _fail(path, f"[pack]: disable must be a list of rule ids, as disable = [\"legal.copyright\"], "
                          f"not {disable!r}")
    if disable and not sites:
        raise _fail(path, "[pack]: disable is for a site pack (with `sites`): it switches rules off for those "
                          "sites; to switch a rule off everywhere, give --rules without its pack")
    if not sites and path.parent.name == "sites":
        raise _fail(path, "[pack]: a pack in a sites/ folder needs `sites = [\"host\", ...]`; without it the pack "
                          "applies to every source. Name its hosts, or move it out of sites/ if it is generic")
    if not sites and str(meta["name"]).startswith("site-"):
        # A site's pack given with --rules from anywhere: without `sites` its rules would act on every source. (Not
        # by its file name: generic.de.toml or consent.eu.toml are generic packs named like hosts.)
        raise _fail(path, f"[pack]: named for a site ({meta['name']!r}) but without `sites`, so it would apply to "
                          "every source: add sites = [\"host\", ...], or rename it if it is generic")
    return RulePack(
        name=str(meta["name"]),
        version=str(meta["version"]),
        sites=tuple(site.strip().lower().removeprefix("www.") for site in sites),
        path=str(path),
        rules=rules,
        disable=tuple(disable),
    )


def load_rules(paths: Iterable[Path | str] | None = None) -> RuleSet:
    """Load rule packs (default: every pack shipped in ``cleaners/rules``); site packs first.

    ``paths`` may name pack files or folders of packs (searched recursively for ``*.toml``).
    """
    files: list[Path] = []
    for entry in [DEFAULT_RULES_DIR] if paths is None else [Path(p) for p in paths]:
        if entry.is_dir():
            found = sorted(entry.rglob("*.toml"))
            if not found:
                raise RulePackError(f"{entry}: a folder with no rule packs (*.toml) in it; cleaning without rules "
                                    "is not what --rules is for: give the folder of your packs")
            files.extend(found)
        elif entry.is_file():
            files.append(entry)
        else:
            raise RulePackError(f"{entry}: no such rule pack file or folder")
    files = list(dict.fromkeys(f.resolve() for f in files))  # a pack given twice (a folder and a file in it) once
    packs = [load_pack(f) for f in files]
    packs.sort(key=lambda p: (not p.sites, p.name))  # site packs win: they are checked first
    _check_unique(packs)
    known = {rule.id for pack in packs for rule in pack.rules}
    for pack in packs:
        unknown = [rule_id for rule_id in pack.disable if rule_id not in known]
        if unknown:
            raise RulePackError(f"{pack.path}: disable names {unknown}, which no loaded pack defines (the ids are in "
                                "`boilerstrip explain` output and in each pack's [[rules]] id)")
    for pack in packs:
        for rule in pack.rules:
            _check_examples(Path(pack.path), rule)
    digest = hashlib.sha256()
    for pack in packs:
        digest.update(Path(pack.path).read_bytes())
    names = ",".join(f"{p.name}@{p.version}" for p in packs)
    return RuleSet(packs=tuple(packs), version=f"{names}#{digest.hexdigest()[:12]}")


def _check_unique(packs: Sequence[RulePack]) -> None:
    seen: dict[str, str] = {}
    for pack in packs:
        others = [p.path for p in packs if p is not pack and p.name == pack.name]
        if others:
            raise RulePackError(f"{pack.path}: pack name {pack.name!r} is used by {others[0]} too: rename one")
        for rule in pack.rules:
            if rule.id in seen:
                where = f"twice in {pack.path}" if seen[rule.id] == pack.path else \
                    f"in both {seen[rule.id]} and {pack.path}"
                raise RulePackError(f"rule id {rule.id!r} is defined {where}: ids are unique across the packs of a "
                                    "run (they name removals); rename one")
            seen[rule.id] = pack.path
