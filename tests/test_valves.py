"""The classifier's decisions per document: normal, uncertainty valve, safety valve (cleaners.document).

A scripted judge gives each line a chosen p(junk), so each valve is tested on its own, with the shipped
thresholds (normal 0.6, cautious 0.8, conservative 0.95).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from cleaners.document import MODEL_RULE, Caution, CleanConfig, DocumentInput, clean_document, clean_documents
from cleaners.explain import explain_lines
from cleaners.linemodel import CAUTIOUS_THRESHOLD, CONSERVATIVE_THRESHOLD

TITLE = "Harbour ferry timetable changes from Monday"
# Ordinary prose lines of twelve words each: no rule pack names them.
PROSE = [f"Line {n} of the report says the ferry will run later today." for n in range(10)]


@dataclass
class _ScriptedJudgement:
    probabilities: list[np.ndarray]

    def explain_many(self, doc_indices: np.ndarray, line_indices: np.ndarray) -> list[str]:
        return [f"scripted p={self.probabilities[d][i]:.2f}" for d, i in zip(doc_indices, line_indices, strict=True)]


class ScriptedJudge:
    """p(junk) by line text (default 0.05); blank lines 1.0, as the real judge gives them."""

    version = "scripted"

    def __init__(self, p_of: dict[str, float]) -> None:
        self.p_of = p_of

    def judge(self, docs: Sequence[Sequence[str]], template_share: Sequence[Sequence[float] | np.ndarray],
              stripped: bool = False, utf8: object = None) -> _ScriptedJudgement:
        return _ScriptedJudgement([np.array([self.p_of.get(line.strip(), 0.05) if line.strip() else 1.0
                                             for line in doc]) for doc in docs])

    def decide(self, probabilities: np.ndarray, caution: Caution) -> np.ndarray:
        threshold = {Caution.NORMAL: 0.6, Caution.CAUTIOUS: CAUTIOUS_THRESHOLD,
                     Caution.CONSERVATIVE: CONSERVATIVE_THRESHOLD}[caution]
        return np.asarray(probabilities) >= threshold


# Page furniture a rule removes: with it, the classifier's uncertain drops are not the page's only evidence of junk.
FURNITURE = "Skip to content"


def _clean(rules, p_of: dict[str, float], lines: list[str] = PROSE, furniture: bool = False):
    text = "\n\n".join([*([FURNITURE] if furniture else []), TITLE, *lines]) + "\n"
    return clean_document(text, rules, judge=ScriptedJudge(p_of))


def _by_classifier(result) -> list[str]:
    return [r.text for r in result.removed if r.rule == MODEL_RULE]


def test_the_shipped_judge_drops_at_each_level_from_its_threshold(judge) -> None:
    """Levels nest, and a model whose own threshold is above a level's uses its own (never drops more)."""
    p = np.array([0.59, 0.6, 0.79, 0.8, 0.94, 0.95, 1.0])
    assert judge.threshold == 0.6
    assert judge.decide(p, Caution.NORMAL).tolist() == [False, True, True, True, True, True, True]
    assert judge.decide(p, Caution.CAUTIOUS).tolist() == [False, False, False, True, True, True, True]
    assert judge.decide(p, Caution.CONSERVATIVE).tolist() == [False, False, False, False, False, True, True]
    strict = copy.copy(judge)
    strict.threshold = 0.9
    assert strict.decide(p, Caution.CAUTIOUS).tolist() == strict.decide(p, Caution.NORMAL).tolist()


def test_a_few_uncertain_drops_go(rules) -> None:
    """One line of ten at p=0.7 is 10% of the words: below the uncertainty valve's 20%, it goes (on a page with
    furniture a rule removed)."""
    result = _clean(rules, {PROSE[9]: 0.7}, furniture=True)
    assert _by_classifier(result) == [PROSE[9]]
    assert not result.low_confidence
    assert result.removed[-1].reason == "scripted p=0.70"


def test_uncertain_drops_as_the_only_evidence_of_junk_stay(rules) -> None:
    """No rule or template line took anything out, and the classifier is sure of no line: an article with no page
    furniture around it, whose uncertain drops are short article lines. A confident line, or a rule's removal,
    is evidence of furniture: then the uncertain drops go too."""
    alone = _clean(rules, {PROSE[8]: 0.7, PROSE[9]: 0.75})
    assert _by_classifier(alone) == []
    assert alone.text.split("\n\n") == PROSE
    assert not alone.low_confidence
    # What the valve kept, and why (boilerstrip explain shows it): PROSE[i] is line 3 + 2i.
    assert [line_no for line_no, _ in alone.spared_rows] == [19, 21]
    assert all("only evidence of junk" in why for _, why in alone.spared_rows)
    assert alone.spared_rows[0][1].endswith("would have gone: [learned.line-classifier] scripted p=0.70")
    [*_, explained] = explain_lines("\n\n".join([TITLE, *PROSE]) + "\n", alone)
    assert explained.kept and explained.note == alone.spared_rows[1][1]
    confident = _clean(rules, {PROSE[8]: 0.7, PROSE[9]: 0.9})
    assert _by_classifier(confident) == PROSE[8:]
    ruled = _clean(rules, {PROSE[8]: 0.7, PROSE[9]: 0.75}, furniture=True)
    assert _by_classifier(ruled) == PROSE[8:]
    assert ruled.removed[0].rule == "nav.skip-link"


def test_many_uncertain_drops_leave_only_the_confident(rules) -> None:
    """Three lines at p=0.7 (30% of the words) are too much to cut on middling evidence: only the
    line at p=0.9 goes, and the row is not flagged (nothing was eaten)."""
    p_of = {PROSE[0]: 0.7, PROSE[1]: 0.7, PROSE[2]: 0.7, PROSE[9]: 0.9}
    result = _clean(rules, p_of)
    assert _by_classifier(result) == [PROSE[9]]
    assert not result.low_confidence
    assert PROSE[0] in result.text
    assert [line_no for line_no, _ in result.spared_rows] == [3, 5, 7]
    assert result.spared_rows[0][1].startswith("kept by the uncertainty valve: the classifier's uncertain drops "
                                               "held 30%")


# A Japanese article: each paragraph is one run of characters without spaces (one "word" to str.split).
JAPANESE = ["京都市上京区で江戸時代から続く豆腐店が、今月末で営業を終えることになった。"
            "七代目の店主が体力の衰えを理由に決めた。",
            "店は一八二五年の創業。地下水を使った柔らかい絹ごし豆腐で知られ、近くの寺や料亭にも長く納めてきた。",
            "閉店を知った常連客が連日、朝早くから列を作っている。"
            "三十年通っているという女性は「ここの豆腐がない朝は考えられない」と話した。",
            "最終営業日は三十一日。"]


def test_words_of_a_script_written_without_spaces_weigh_in_the_valves(rules) -> None:
    """The uncertainty valve weighs the words of the classifier's uncertain drops. A paragraph of Japanese counts a
    word per two characters, not one per paragraph: three uncertain paragraphs are most of this page's words (not
    3 of ~60 next to its English menus), and they stay."""
    chrome = ["Home | News | Sport | Business | Culture | Opinion", "Share this article on Facebook or by email",
              "Related articles", "Council approves tax rise for next year", "New head named for the academy"]
    p_of = {JAPANESE[0]: 0.7, JAPANESE[1]: 0.7, JAPANESE[2]: 0.7, **dict.fromkeys(chrome[3:], 0.9)}
    text = "\n\n".join([TITLE, chrome[0], *JAPANESE, *chrome[1:]]) + "\n"
    result = clean_document(text, rules, judge=ScriptedJudge(p_of))
    assert all(paragraph in result.text for paragraph in JAPANESE)
    assert _by_classifier(result) == chrome[3:]
    assert result.spared_rows[0][1].startswith("kept by the uncertainty valve")
    assert result.kept_ratio > 0.6


def test_the_uncertainty_share_is_a_setting(rules) -> None:
    p_of = {PROSE[0]: 0.7, PROSE[1]: 0.7, PROSE[2]: 0.7}
    text = "\n\n".join([FURNITURE, TITLE, *PROSE]) + "\n"
    lenient = clean_document(text, rules, judge=ScriptedJudge(p_of), config=CleanConfig(max_uncertain_share=0.5))
    assert _by_classifier(lenient) == PROSE[:3]


def test_safety_valve_keeps_the_conservative_result(rules) -> None:
    """Nine lines of ten at p=0.9 would leave 10% of the words: only the line at p=0.99 goes, flagged."""
    p_of = {line: 0.9 for line in PROSE[:9]} | {PROSE[9]: 0.99}
    result = _clean(rules, p_of)
    assert _by_classifier(result) == [PROSE[9]]
    assert result.low_confidence
    assert result.kept_ratio == pytest.approx(0.9)
    assert len(result.spared_rows) == 9
    assert all(why.startswith("kept by the safety valve: the learned steps would have left 0%") for _, why in
               result.spared_rows)


def test_safety_valve_keeps_everything_when_even_the_conservative_result_eats_the_document(rules) -> None:
    result = _clean(rules, {line: 0.99 for line in PROSE})
    assert _by_classifier(result) == []
    assert result.low_confidence
    assert result.text.split("\n\n") == PROSE
    assert [r.rule for r in result.removed] == ["structure.title"]


def test_a_declared_title_missing_from_the_text_does_not_shrink_the_document(rules) -> None:
    """The valves count the words of the text without its title line; a declared title that is not
    printed at the top has no line to subtract. Two lines of ten at p=0.7 are 20% of the words, not more
    (with a page's furniture line a rule removes, "Skip to content": 24 of 123 words)."""
    p_of = {PROSE[0]: 0.7, PROSE[1]: 0.7}
    body = "\n\n".join([FURNITURE, *PROSE]) + "\n"
    declared = "An entirely different declared headline with many words in it, longer than one line of the text"
    [result] = clean_documents([DocumentInput(body, known_title=declared)], rules, judge=ScriptedJudge(p_of))
    assert result.title == declared
    assert _by_classifier(result) == PROSE[:2]
    assert result.kept_ratio == pytest.approx(96 / 123)


def test_a_sentence_between_lines_kept_at_the_cautious_level_stays_there(rules) -> None:
    """Short-sentence smoothing runs at every level of caution. At the normal level line 4's neighbours go,
    so it is not between kept lines there; the uncertain drops (40% of the words) move the document to the
    cautious level, where its neighbours stay, so it stays with them."""
    p_of = {PROSE[0]: 0.7, PROSE[1]: 0.7, PROSE[3]: 0.7, PROSE[4]: 0.85, PROSE[5]: 0.7}
    result = _clean(rules, p_of)
    assert _by_classifier(result) == []
    assert PROSE[4] in result.text
    alone = _clean(rules, {PROSE[4]: 0.85, PROSE[3]: 0.9})  # a neighbour dropped at that level: it goes
    assert _by_classifier(alone) == [PROSE[3], PROSE[4]]


def test_the_rows_of_a_pipe_table_stay_whatever_the_classifier_says(rules) -> None:
    """Figures under a header, written with pipes, are article content that the classifier misjudges line by line
    (short, number-heavy): they stay, as the rule packs leave them (cleaners.rulepack.in_pipe_table)."""
    table = ["Quarter | Robots shipped | Revenue", "Q1 2024 | 180 | $3.1m", "Q1 2025 | 410 | $9.6m"]
    # A single piped line is no table (no rule names this one: the classifier decides), unless it is a line of
    # labelled values, a table of its own.
    piped = "The ferry leaves the harbour at nine in the morning | the bus at ten | the train at noon"
    facts = "Crossing: 40 min | Fare: £6 | Departures: hourly"
    text = "\n\n".join([TITLE, PROSE[0], "\n".join(table), PROSE[1], piped, PROSE[2], facts]) + "\n"
    days = ["Street | Old day | New day", "Mill Lane | Monday | Tuesday", "Quay Road | Monday | Wednesday"]
    text = text.rstrip("\n") + "\n\n" + "\n".join(days) + "\n\n" + PROSE[3] + "\n"
    result = clean_document(text, rules, judge=ScriptedJudge({line: 0.9 for line in [*table, piped, facts, *days]}))
    assert all(row in result.text.split("\n") for row in [*table, facts, *days])
    assert [r.rule for r in result.removed if r.text == piped] == [MODEL_RULE]


def test_pipe_table_rows_agree_with_the_per_line_definition_and_scale_linearly() -> None:
    """The batch form (one walk per run of rows) marks exactly the lines cleaners.rulepack.in_pipe_table marks, and a
    20,000-row table takes well under a second (a per-row check rescanned the table: minutes)."""
    import random
    import time

    from cleaners import kernels, textbytes
    from cleaners.document import _pipe_table_rows
    from cleaners.rulepack import in_pipe_table

    pieces = ["A | B | C", "Q1 | 1 | 2", "Q2 | 3 | 4", "Home | News | Sport", "x | y", "| a | b |", "", "prose",
              "1 | 2 | 3 | 4", "n | 5 | 6", "Region | 7 | 8 | 9", "Mill Lane | Monday | Tuesday",
              "Quay Road | Monday | Friday", "Church Walk | Friday | Monday", "Elm Row | Monday | Monday"]
    generator = random.Random(7)
    docs = [[generator.choice(pieces) for _ in range(generator.randint(1, 30))] for _ in range(200)]
    docs.append(["Quarter | Revenue | Margin", *[f"Q{i} | {i} | {i * 2}" for i in range(20_000)]])
    # The batch as the cleaner holds it: every line end to end as UTF-8, with each line's stripped bounds.
    sizes = np.array([len(d) for d in docs], np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    doc_of = np.repeat(np.arange(len(docs)), sizes)
    data = np.frombuffer("\n".join(line for d in docs for line in d).encode(), np.uint8)
    starts, ends, _, _ = kernels.strip_spaces(data, *textbytes.line_bounds(data))
    utf8 = textbytes.LineBytes(data, starts, ends)
    alive = np.ones(int(offsets[-1]), bool)
    started = time.perf_counter()
    found = _pipe_table_rows(docs, offsets, doc_of, alive, utf8)
    assert time.perf_counter() - started < 2
    expected = [in_pipe_table(doc, line) for doc in docs[:-1] for line in range(len(doc))]
    assert found[:int(offsets[-2])].tolist() == expected
    assert found[int(offsets[-2]):].all()


def _site_pack(tmp_path, body: str):
    from cleaners import load_rules

    path = tmp_path / "site.toml"
    path.write_text('[pack]\nname = "site-valleyherald.com"\nversion = "1"\nsites = ["valleyherald.com"]\n' + body,
                    encoding="utf-8")
    return load_rules([path, Path(__file__).parents[1] / "cleaners" / "rules" / "generic.toml"])


KEEP_SIGN_UP = '''
[[rules]]
id = "valleyherald.keep-sign-up"
concept = "article"
why = "The library's sign-up line is part of its notices, not a prompt to subscribe."
literal = "Sign up at the library desk."
action = "keep"
examples.drop = ["Sign up at the library desk."]
examples.keep = ["Sign up for our newsletter"]
'''


def test_a_keep_rule_protects_its_line_from_the_classifier_rules_and_template(tmp_path) -> None:
    """A site's keep rule is the rule writer's answer to real text removed: no later step takes the line."""
    sign_up = "Sign up at the library desk."
    share = "Share this story"  # a generic rule (share.prompt) would drop it
    keep_share = KEEP_SIGN_UP + KEEP_SIGN_UP.replace("keep-sign-up", "keep-share").replace(
        "Sign up at the library desk.", share).replace("Sign up for our newsletter", "Share this story with a friend")
    # Last: between two kept lines the sentence would be spared as a sandwiched sentence.
    text = "\n\n".join([TITLE, PROSE[0], share, PROSE[1], PROSE[2], sign_up]) + "\n"
    judge = ScriptedJudge({sign_up: 0.9})
    without = clean_document(text, _site_pack(tmp_path, ""), source="valleyherald.com", judge=judge)
    assert sign_up in _by_classifier(without) and share not in without.text
    kept = clean_document(text, _site_pack(tmp_path, keep_share), source="valleyherald.com", judge=judge)
    assert sign_up in kept.text and share in kept.text
    assert not [r for r in kept.removed if r.text in (sign_up, share)]
    # A keep rule's line stays below a cut marker too, and the template step does not take it.
    cut = KEEP_SIGN_UP.replace("keep-sign-up", "comments").replace('"keep"', '"cut_rest"').replace(
        "Sign up at the library desk.", "Leave a Reply").replace("Sign up for our newsletter", "Leave it")
    text = "\n\n".join([TITLE, *PROSE[:5], "Leave a Reply", sign_up, "Nice post!"]) + "\n"
    below = clean_document(text, _site_pack(tmp_path, KEEP_SIGN_UP + cut), source="valleyherald.com", judge=judge)
    assert below.text.endswith(f"{PROSE[4]}\n\n{sign_up}") and "Nice post!" not in below.text
    from cleaners.batch import BatchItem, clean_batch

    rules = _site_pack(tmp_path, KEEP_SIGN_UP)
    pages = [BatchItem("valleyherald.com", "\n\n".join([f"Story {n} of the week", PROSE[n], sign_up, PROSE[n + 1]]))
             for n in range(6)]
    for result in clean_batch(pages, rules, judge=ScriptedJudge({})):
        assert sign_up in result.text, result.removed
    assert "learned.source-boilerplate" in {r.rule for r in clean_batch(pages, _site_pack(tmp_path, ""),
                                                                         judge=ScriptedJudge({}))[0].removed}


def test_a_site_pack_disables_a_generic_rule_for_its_sites_only(tmp_path) -> None:
    from cleaners.rulepack import RulePackError

    footer = "(c) 2024 Valley Herald"
    text = "\n\n".join([TITLE, *PROSE[:3], footer]) + "\n"
    judge = ScriptedJudge({})
    rules = _site_pack(tmp_path, 'disable = ["legal.copyright"]\n')
    assert footer in clean_document(text, rules, source="valleyherald.com", judge=judge).text
    assert footer not in clean_document(text, rules, source="other.example", judge=judge).text
    with pytest.raises(RulePackError, match=r"disable names \['legal.copyrite'\]"):
        _site_pack(tmp_path, 'disable = ["legal.copyrite"]\n')
