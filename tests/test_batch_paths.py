"""The batched fast paths agree with the per-line reference they replaced."""

from __future__ import annotations

import re

import numpy as np

from cleaners import load_rules
from cleaners.linemodel import default_judge


def test_batch_screen_matches_the_per_line_screen() -> None:
    rules = load_rules()
    lines = [example for rule in rules.all_rules() for example in (*rule.examples_drop, *rule.examples_keep)]
    lines += ["", "x" * 5000, "A normal sentence of an article, long enough to pass no rule at all."]
    for source in ("unknown", "420intel.com"):
        program = rules.program_for(source)
        expected = [bool(line) and len(line) <= program.longest and program.screens(line) for line in lines]
        assert program.screen_many(lines).tolist() == expected
        assert any(expected)


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
