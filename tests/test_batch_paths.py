"""The batched fast paths agree with the per-line reference they replaced."""

from __future__ import annotations

import re

import numpy as np

from cleaners import kernels, load_rules
from cleaners.linemodel import default_judge
from cleaners.rulepack import Zone


def _rule_could_match(program, line: str, near_edge: bool) -> bool:
    """The per-rule reference: some rule that may apply at the line's place matches it within its limit."""
    return any(rule.matches(line) is not None for rule in program.rules if near_edge or rule.zone is Zone.ANY)


def test_batch_screen_passes_every_line_a_rule_matches_and_only_lines_the_combined_regex_matches() -> None:
    rules = load_rules()
    lines = [example for rule in rules.all_rules() for example in (*rule.examples_drop, *rule.examples_keep)]
    lines += ["", "x" * 5000, "A normal sentence of an article, long enough to pass no rule at all.",
              "Share"]
    for source in ("unknown", "420intel.com"):
        program = rules.program_for(source)
        combined = [bool(line) and len(line) <= program.longest and program.screen.fullmatch(line) is not None
                    for line in lines]
        surrogate = program.screen_many(["Share", "Share\ud800"]).tolist()
        assert surrogate == [True, False]  # RE2 cannot read a lone surrogate: not screened, no crash
        for near_edge in (True, False):
            data = np.frombuffer("\n".join(lines).encode("utf-8", "surrogatepass"), np.uint8)
            breaks = np.flatnonzero(data == 10)
            bounds = kernels.strip_spaces(data, np.concatenate([[0], breaks + 1]),
                                          np.concatenate([breaks, [len(data)]]))
            passed = program.screen_lines(data, *bounds, np.full(len(lines), near_edge)).tolist()
            for line, hit, combined_hit in zip(lines, passed, combined, strict=True):
                if _rule_could_match(program, line, near_edge):
                    assert hit, line
                if hit:
                    assert combined_hit, line
            assert any(passed)
        assert sum(program.screen_lines(data, *bounds, np.zeros(len(lines), bool))) < sum(combined)
        # screen_many: zones aside, the same as near_edge everywhere.
        assert program.screen_many(lines).tolist() == program.screen_lines(data, *bounds,
                                                                           np.ones(len(lines), bool)).tolist()


def test_explanations_name_the_model_probability_and_three_model_features() -> None:
    judge = default_judge()
    doc = ["Home | News | Sport | Contact", "Share on Facebook", "The council met on Tuesday to discuss the "
           "budget, which has grown by four percent since last year.", "Subscribe to our newsletter"]
    judgement = judge.judge([doc], [[0.0] * len(doc)])
    lines = np.arange(len(doc))
    reasons = judgement.explain_many(np.zeros(len(doc), np.int64), lines)
    pattern = re.compile(r"line classifier sha256:\w+: p\(junk\)=[\d.]+; line alone p=[\d.]+; towards junk: (.+)")
    for line, reason in zip(lines, reasons, strict=True):
        found = pattern.fullmatch(reason)
        assert found, reason
        p = float(reason.split("p(junk)=")[1].split(";")[0])
        assert abs(p - judgement.probabilities[0][line]) <= 0.005
        names = [part.split("=")[0] for part in found.group(1).split(", ")]
        assert len(names) == 3 and set(names) <= set(judge.stage1.features)


def test_judging_in_chunks_gives_the_same_probabilities_and_reasons(monkeypatch) -> None:
    from cleaners import linemodel

    judge = default_judge()
    docs = [["Home | News | Sport", "", f"Article {k} says the council met on Tuesday to discuss the budget.",
             "Share on Facebook", "Comments (3)"] for k in range(12)]
    shares = [[0.0] * len(doc) for doc in docs]
    whole = judge.judge(docs, shares)
    monkeypatch.setattr(linemodel, "JUDGE_CHUNK_LINES", 7)  # about one and a half documents per chunk
    assert len(linemodel._chunks(np.cumsum([0] + [len(d) for d in docs]), 7)) > 5
    chunked = judge.judge(docs, shares)
    for a, b in zip(whole.probabilities, chunked.probabilities, strict=True):
        assert np.array_equal(a, b)
    doc_index = np.repeat(np.arange(len(docs)), 5)
    line_index = np.tile(np.arange(5), len(docs))
    assert whole.explain_many(doc_index, line_index) == chunked.explain_many(doc_index, line_index)
