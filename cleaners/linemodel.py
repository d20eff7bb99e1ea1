"""The shipped line classifier behind the :class:`~cleaners.document.LineJudge` protocol.

A two-stage oblivious-tree ensemble (``cleaners/models/line_model.json``, trained by
``scripts/training/train_line_model.py`` on the labelled dev set; see docs/line-classifier.md)
evaluated with numpy by ``cleaners.linejudge``. Every removed line is explained by the stage-1
features that pushed it towards junk the most (path attributions, computed for the whole batch).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cleaners import linejudge

DEFAULT_MODEL = Path(__file__).parent / "models" / "line_model.json"
# Decision thresholds on p(junk): the normal one is stored in the model; the conservative one is used
# by the safety valve when the normal decision would remove most of a document.
CONSERVATIVE_THRESHOLD = 0.95
TOP_FEATURES = 3


def _prefix_tables(evaluator: linejudge.Oblivious) -> list[list[np.ndarray]]:
    """Per tree and depth: mean leaf value below each prefix of split outcomes (for attributions)."""
    tables = []
    for split_f, leaves, weights in zip(evaluator.split_f, evaluator.leaves, evaluator.weights, strict=True):
        leaves = np.asarray(leaves, np.float64)
        weights = np.asarray(weights, np.float64)
        if len(weights) != len(leaves) or weights.sum() <= 0:
            weights = np.ones_like(leaves)
        ids = np.arange(len(leaves))
        per_depth = []
        for depth in range(len(split_f) + 1):
            size = 1 << depth
            total = np.bincount(ids & (size - 1), weights=leaves * weights, minlength=size)
            mass = np.bincount(ids & (size - 1), weights=weights, minlength=size)
            per_depth.append(np.where(mass > 0, total / np.maximum(mass, 1e-12), 0.0))
        tables.append(per_depth)
    return tables


def _contributions(evaluator: linejudge.Oblivious, tables: list[list[np.ndarray]], rows: np.ndarray) -> np.ndarray:
    """Saabas path attributions, (n_rows, n_features), vectorized per tree and depth."""
    columns = np.ascontiguousarray(np.asarray(rows, np.float32).T)
    n = rows.shape[0]
    out = np.zeros((len(evaluator.features), n), np.float64)
    for (split_f, split_b), per_depth in zip(zip(evaluator.split_f, evaluator.split_b, strict=True), tables,
                                             strict=True):
        index = np.zeros(n, np.int64)
        previous = np.full(n, per_depth[0][0])
        for depth in range(len(split_f)):
            index |= (columns[split_f[depth]] > split_b[depth]).astype(np.int64) << depth
            current = per_depth[depth + 1][index]
            out[split_f[depth]] += current - previous
            previous = current
    return out.T


@dataclass
class Judgement:
    """Probabilities for one batch, and what is needed to explain any of its lines."""

    probabilities: list[list[float]]
    _model: LearnedLineJudge
    _rows: dict[tuple[int, int], int]
    _features: np.ndarray | None
    _p1: np.ndarray | None

    def explain(self, doc_index: int, line_indices: Sequence[int]) -> list[str]:
        if not line_indices or self._features is None:
            return []
        rows = [self._rows.get((doc_index, i), -1) for i in line_indices]
        valid = [r for r in rows if r >= 0]
        contributions = _contributions(self._model.stage1, self._model.tables, self._features[valid]) \
            if valid else np.zeros((0, 0))
        by_row = {r: contributions[k] for k, r in enumerate(valid)}
        names = self._model.stage1.features
        reasons = []
        for r in rows:
            if r < 0:
                reasons.append("blank line")
                continue
            order = np.argsort(-by_row[r])[:TOP_FEATURES]
            pushed = ", ".join(f"{names[j]}={self._features[r, j]:.3g} ({by_row[r][j]:+.2f})" for j in order)
            reasons.append(f"line alone p={self._p1[r]:.2f}, with neighbours decided; towards junk: {pushed}")
        return reasons


class LearnedLineJudge:
    """Adapter from ``cleaners.linejudge.LineJudge`` to the cleaner's ``LineJudge`` protocol."""

    def __init__(self, path: Path = DEFAULT_MODEL) -> None:
        self.model = linejudge.LineJudge.load(str(path))
        self.threshold = self.model.threshold
        self.version = f"v{self.model.m.get('version', '?')}"
        self.stage1 = self.model.s1
        self.tables = _prefix_tables(self.stage1) if isinstance(self.stage1, linejudge.Oblivious) else []

    def judge(self, docs: Sequence[Sequence[str]], template_share: Sequence[Sequence[float]]) -> Judgement:
        batch, _features, x1, _, p = self.model._run([list(d) for d in docs], [list(s) for s in template_share])
        probabilities = [[1.0] * len(d) for d in docs]
        rows: dict[tuple[int, int], int] = {}
        for row, (d, j, v) in enumerate(zip(batch.doc_id.tolist(), batch.line_ix.tolist(), p.tolist(),
                                            strict=True)):
            probabilities[d][j] = v
            rows[(d, j)] = row
        p1 = None
        if x1 is not None:
            p1 = linejudge.sigmoid(self.stage1.raw(x1)) if self.model.s2 is not None else p
        return Judgement(probabilities, self, rows, x1 if self.tables else None, p1)

    def decide(self, probabilities: Sequence[float], conservative: bool) -> list[bool]:
        threshold = CONSERVATIVE_THRESHOLD if conservative else self.threshold
        return [p >= threshold for p in probabilities]


@functools.cache
def default_judge() -> LearnedLineJudge:
    """The shipped model, loaded once per process (read-only afterwards)."""
    return LearnedLineJudge()
