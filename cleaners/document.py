"""Clean one document: normalize characters, take the title out, drop junk lines, normalize layout.

:func:`clean_document` is pure: the same text, rules and config give the same result. Every line
that leaves the text is returned as a :class:`~cleaners.types.RemovedLine` naming the rule and why.
A line no rule names is kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cleaners.boilerplate import Evidence, LineStats
from cleaners.normalize import normalize_characters, normalize_layout
from cleaners.rulepack import Action, Rule, RuleProgram, RuleSet, canonical_line
from cleaners.types import CleanResult, RemovedLine


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
    # Safety valve: when learned steps would leave less than this share of the words, they are undone
    # and the row is flagged `low_confidence`; rule-pack removals (explicit) stay.
    min_kept_share: float = 0.15


# A page <title> is often "Headline - Site Name"; these separate the headline from the site name.
_TITLE_SEPARATORS = re.compile(r"\s+(?:[-–—|:·•»]|::)\s+")
# Headlines may end in "?" or "!"; a first line ending in these is more likely a sentence.
_SENTENCE_END = re.compile(r"[.;,:]['\"”’)]*$")


@dataclass(slots=True)
class _Lines:
    """The document's lines and the decision taken on each; indices are 0-based."""

    lines: list[str]
    removed: dict[int, RemovedLine]

    def remove(self, index: int, rule: str, reason: str) -> None:
        if index not in self.removed:
            self.removed[index] = RemovedLine(index + 1, self.lines[index].strip(), rule, reason)

    def nonblank(self) -> list[int]:
        return [i for i, line in enumerate(self.lines) if line.strip() and i not in self.removed]


def _looks_like_title(line: str, config: CleanConfig) -> bool:
    return len(line) <= config.title_max_chars and len(line.split()) <= config.title_max_words


def take_title(doc: _Lines, known_title: str | None, config: CleanConfig) -> str | None:
    """Find the title at the top, move it out of the text, and drop its repeats.

    The title is, in order of preference: the title the input declared (record field or HTML
    metadata) when it is printed at the top; a line printed twice at the top (page <title> plus
    headline); the first line when it is short, does not end like a sentence, and more text follows.
    """
    top = doc.nonblank()[: config.title_zone_lines]
    if len(doc.nonblank()) < 2 or not top:
        return known_title
    canon = {i: canonical_line(doc.lines[i]) for i in top}
    title: str | None = None
    if known_title:
        wanted = canonical_line(known_title)
        hits = [i for i in top if canon[i] == wanted]
        if hits:
            title = known_title.strip()
    if title is None:
        first = top[0]
        repeats = [i for i in top[1:] if canon[i] == canon[first]]
        # "Headline - Site Name" on the first line, the bare headline below it.
        prefixed = [
            i for i in top[1:]
            if len(canon[i]) >= 15 and canon[first].startswith(canon[i])
            and _TITLE_SEPARATORS.match(doc.lines[first].strip()[len(doc.lines[i].strip()):] + " ")
        ]
        if _looks_like_title(doc.lines[first].strip(), config) and (repeats or prefixed):
            if prefixed:
                doc.remove(first, "structure.page-title",
                           "page <title> with the site name; the headline below is kept as title")
                title = doc.lines[prefixed[0]].strip()
            else:
                title = doc.lines[first].strip()
        elif _looks_like_title(doc.lines[first].strip(), config) and not _SENTENCE_END.search(doc.lines[first].strip()):
            title = doc.lines[first].strip()
    if title is None:
        return known_title
    wanted = canonical_line(title)
    first_copy = True
    for i in top:
        if canon[i] == wanted and i not in doc.removed:
            if first_copy:
                doc.remove(i, "structure.title", "the title: moved to the `title` column")
                first_copy = False
            else:
                doc.remove(i, "structure.title-repeat", "the title printed again at the top")
    return title


def apply_rules(doc: _Lines, program: RuleProgram) -> dict[str, str]:
    """Drop the lines that rule-pack rules match; return metadata values the rules extracted."""
    metadata: dict[str, str] = {}
    if program.screen is None:
        return metadata
    ranks = doc.nonblank()
    n = len(ranks)
    cut_from: tuple[int, Rule] | None = None
    for rank, i in enumerate(ranks):
        line = doc.lines[i].strip()
        # Most prose lines are longer than any rule allows; the rest are screened in one regex call.
        if len(line) > program.longest or not program.screens(line):
            continue
        for rule in program.rules:
            if not rule.in_zone(rank, n - 1 - rank):
                continue
            found = rule.matches(line)
            if found is None:
                continue
            if rule.action is Action.METADATA and rule.metadata_column:
                value = found.group("value").strip()
                metadata.setdefault(rule.metadata_column, value)
                doc.remove(i, rule.id, f"{rule.why} (moved to `{rule.metadata_column}`: {value!r})")
            elif rule.action is Action.CUT_REST:
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
            if doc.lines[i].strip():
                doc.remove(i, rule.id, f"after the marker on line {start + 1}: {rule.why}")
    return metadata


LEARNED_RULE = "learned.source-boilerplate"
MODEL_RULE = "learned.line-classifier"


def line_evidence(lines: Sequence[str], source: str, stats: LineStats | None,
                  config: CleanConfig) -> list[Evidence | None] | None:
    """Each line's count among its source's documents, looked up once per document (the template
    step and the classifier's template-share feature both use it). None for small or unknown sources."""
    if stats is None or stats.source_docs.get(source, 0) < config.min_source_docs:
        return None
    return [stats.evidence(source, line) if line.strip() else None for line in lines]


def remove_source_boilerplate(doc: _Lines, source: str, evidence: Sequence[Evidence | None],
                              config: CleanConfig) -> None:
    """Drop lines that recur on a large share of this source's documents (its page template)."""
    for i in doc.nonblank():
        found = evidence[i]
        if found is not None and found.n_docs >= 2 and found.share >= config.boilerplate_share:
            doc.remove(i, LEARNED_RULE, f"on {found.share:.0%} of {found.source_docs} documents of "
                                        f"source {source!r}: part of its page template")


def _words(text: str) -> int:
    return len(text.split())


class Judgement(Protocol):
    probabilities: list[list[float]]  # junk probability of every line of every document

    def explain(self, doc_index: int, line_indices: Sequence[int]) -> list[str]:
        """A short reason for each named line: the features that decided."""
        ...


class LineJudge(Protocol):
    """A learned line classifier, scored on whole batches of documents at once (vectorized)."""

    version: str

    def judge(self, docs: Sequence[Sequence[str]], template_share: Sequence[Sequence[float]]) -> Judgement:
        """Judge every line of every document (blank lines included)."""
        ...

    def decide(self, probabilities: Sequence[float], conservative: bool) -> list[bool]:
        """Which lines to drop, at the normal or the conservative threshold."""
        ...


@dataclass(frozen=True, slots=True)
class DocumentInput:
    text: str
    source: str = "unknown"
    known_title: str | None = None


@dataclass(slots=True)
class _Prepared:
    doc: _Lines
    title: str | None
    metadata: dict[str, str]
    explicit: dict[int, RemovedLine]
    normalized: str
    mojibake_fixed: bool
    source: str
    evidence: list[Evidence | None] | None


def _prepare(item: DocumentInput, rules: RuleSet, config: CleanConfig, line_stats: LineStats | None) -> _Prepared:
    """The explicit steps: characters, title, rule packs, then learned per-source template lines."""
    normalized, mojibake_fixed = normalize_characters(item.text)
    doc = _Lines(lines=normalized.split("\n"), removed={})
    title = take_title(doc, item.known_title, config)
    metadata = apply_rules(doc, rules.program_for(item.source))
    explicit = dict(doc.removed)
    evidence = line_evidence(doc.lines, item.source, line_stats, config)
    if evidence is not None:
        remove_source_boilerplate(doc, item.source, evidence, config)
    return _Prepared(doc, title, metadata, explicit, normalized, mojibake_fixed, item.source, evidence)


def _template_share(prepared: _Prepared) -> list[float]:
    """Per line: the share of the source's *other* documents it appears on (0 for small sources).

    The classifier was trained with this feature computed within the training batch; here it comes
    from the run's and earlier runs' counts, so a daily batch of ten still sees the template.
    """
    if prepared.evidence is None:
        return [0.0] * len(prepared.doc.lines)
    return [(e.n_docs - 1) / (e.source_docs - 1) if e is not None and e.source_docs > 1 else 0.0
            for e in prepared.evidence]


def _finalize(prepared: _Prepared, config: CleanConfig, learned_drop: dict[int, RemovedLine] | None,
              conservative_drop: dict[int, RemovedLine] | None) -> CleanResult:
    """Apply the learned removals unless they would eat the document (safety valve), then lay out."""
    doc = prepared.doc
    if learned_drop:
        for i, removed in learned_drop.items():
            doc.removed.setdefault(i, removed)
    total_words = _words(prepared.normalized) - (_words(prepared.title) if prepared.title else 0)
    low_confidence = False
    if len(doc.removed) > len(prepared.explicit) and total_words:
        kept_words = sum(_words(line) for i, line in enumerate(doc.lines) if i not in doc.removed)
        if kept_words / total_words < config.min_kept_share:
            # The learned steps would eat the document: keep the conservative result and say so.
            doc.removed = dict(prepared.explicit)
            for i, removed in (conservative_drop or {}).items():
                doc.removed.setdefault(i, removed)
            low_confidence = True
    kept = "\n".join(line for i, line in enumerate(doc.lines) if i not in doc.removed)
    clean = normalize_layout(kept)
    return CleanResult(
        text=clean,
        title=prepared.title,
        metadata=prepared.metadata,
        removed=tuple(doc.removed[i] for i in sorted(doc.removed)),
        mojibake_fixed=prepared.mojibake_fixed,
        kept_ratio=_words(clean) / total_words if total_words > 0 else 0.0,
        low_confidence=low_confidence,
    )


_SENTENCE_FINAL = re.compile(r"[.!?…][\"'”’)\]]*$")


def _keep_sandwiched_sentences(doc: _Lines, drop: list[bool]) -> None:
    """Context smoothing (as in jusText): a short sentence the classifier would drop between two lines
    that stay is article text ("Good." between two paragraphs of a review), so it stays too."""
    kept = [i for i, line in enumerate(doc.lines) if line.strip() and i not in doc.removed]
    for before, here, after in zip(kept, kept[1:], kept[2:], strict=False):
        if drop[here] and not drop[before] and not drop[after] and _SENTENCE_FINAL.search(doc.lines[here].strip()):
            drop[here] = False


def clean_documents(
    items: Sequence[DocumentInput],
    rules: RuleSet,
    *,
    config: CleanConfig | None = None,
    line_stats: LineStats | None = None,
    judge: LineJudge | None = None,
) -> list[CleanResult]:
    """Clean a batch of documents. The learned line classifier (``judge``) runs once over the batch.

    Order of steps per document: characters, title, rule packs, learned per-source template lines,
    the line classifier on what is left, the safety valve, layout. Every removal names its rule.
    """
    config = config or CleanConfig()
    prepared = [_prepare(item, rules, config, line_stats) for item in items]
    if judge is None:
        return [_finalize(p, config, None, None) for p in prepared]
    docs = [p.doc.lines for p in prepared]
    shares = [_template_share(p) for p in prepared]
    judgement = judge.judge(docs, shares)
    results = []
    for index, (p, probs) in enumerate(zip(prepared, judgement.probabilities, strict=True)):
        normal, conservative = judge.decide(probs, False), judge.decide(probs, True)
        _keep_sandwiched_sentences(p.doc, normal)
        candidates = [i for i, line in enumerate(p.doc.lines)
                      if line.strip() and i not in p.doc.removed and (normal[i] or conservative[i])]
        reasons = dict(zip(candidates, judgement.explain(index, candidates), strict=True)) if candidates else {}

        removals = {i: RemovedLine(i + 1, p.doc.lines[i].strip(), MODEL_RULE,
                                   f"line classifier {judge.version}: p(junk)={probs[i]:.2f}; {reasons[i]}")
                    for i in candidates}
        learned = {i: removals[i] for i in candidates if normal[i]}
        cautious = {i: removals[i] for i in candidates if conservative[i]}
        results.append(_finalize(p, config, learned, cautious))
    return results


def clean_document(
    text: str,
    rules: RuleSet,
    *,
    source: str = "unknown",
    known_title: str | None = None,
    config: CleanConfig | None = None,
    line_stats: LineStats | None = None,
    judge: LineJudge | None = None,
) -> CleanResult:
    """Clean one article's text with the rules that apply to its ``source`` (see :func:`clean_documents`).

    ``line_stats``: per-source line counts from pass 1 (and earlier runs); without them the learned
    per-source step does not run.
    """
    return clean_documents([DocumentInput(text, source, known_title)], rules, config=config,
                           line_stats=line_stats, judge=judge)[0]
