"""The shipped line classifier behind the :class:`~cleaners.document.LineJudge` protocol.

A two-stage oblivious-tree ensemble (``cleaners/models/line_model.json``, trained by
``scripts/training/train_line_model.py`` on the labelled dev set; see docs/line-classifier.md)
evaluated with numpy by ``cleaners.linejudge``. Every removed line is explained by the stage-1
features that pushed it towards junk the most (path attributions, computed for the whole batch).
"""

from __future__ import annotations

import functools
import hashlib
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
    """Probabilities for one batch, and the attributions that explain its junk lines."""

    probabilities: list[list[float]]
    _rows: dict[tuple[int, int], int]        # (document, line) -> row of the flat batch
    _explained: dict[int, str]               # row -> reason, for every row at or above the threshold

    def explain(self, doc_index: int, line_indices: Sequence[int]) -> list[str]:
        return [self._explained.get(self._rows.get((doc_index, i), -1), "blank line") for i in line_indices]


def _reasons(model: LearnedLineJudge, features: np.ndarray, p1: np.ndarray, rows: np.ndarray) -> dict[int, str]:
    """One attribution pass for all the batch's junk rows at once: per-document calls were 50% of the
    cleaner's time (measured on 1,000 dev documents); one batched pass is a few percent."""
    if not len(rows) or not model.tables:
        return {}
    contributions = _contributions(model.stage1, model.tables, features[rows])
    top = np.argsort(-contributions, axis=1)[:, :TOP_FEATURES]
    names = model.stage1.features
    values = features[rows[:, None], top]
    pushes = np.take_along_axis(contributions, top, axis=1)
    out = {}
    for k, row in enumerate(rows.tolist()):
        pushed = ", ".join(f"{names[j]}={v:.3g} ({c:+.2f})" for j, v, c in zip(top[k], values[k], pushes[k],
                                                                                  strict=True))
        out[row] = f"line alone p={p1[row]:.2f}; towards junk: {pushed}"
    return out


class LearnedLineJudge:
    """Adapter from ``cleaners.linejudge.LineJudge`` to the cleaner's ``LineJudge`` protocol."""

    def __init__(self, path: Path = DEFAULT_MODEL) -> None:
        self.model = linejudge.LineJudge.load(str(path))
        self.threshold = self.model.threshold
        # The model file's digest: written into every reason, so a removal names the exact model.
        self.version = "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
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
        explained: dict[int, str] = {}
        if x1 is not None:
            p1 = linejudge.sigmoid(self.stage1.raw(x1)) if self.model.s2 is not None else p
            explained = _reasons(self, x1, p1, np.flatnonzero(p >= self.threshold))
        return Judgement(probabilities, rows, explained)

    def decide(self, probabilities: Sequence[float], conservative: bool) -> list[bool]:
        threshold = CONSERVATIVE_THRESHOLD if conservative else self.threshold
        return [p >= threshold for p in probabilities]


@functools.cache
def default_judge() -> LearnedLineJudge:
    """The shipped model, loaded once per process (read-only afterwards)."""
    return LearnedLineJudge()
