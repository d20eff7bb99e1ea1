"""The shipped line classifier behind the :class:`~cleaners.document.LineJudge` protocol.

A two-stage oblivious-tree ensemble (``cleaners/models/line_model.json``, trained by
``scripts/training/train_line_model.py`` on the labelled dev set; see docs/line-classifier.md)
evaluated with numpy by ``cleaners.linejudge``. Every removed line is explained by the stage-1
features that pushed it towards junk the most (path attributions, computed for the whole batch).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cleaners import kernels, linejudge
from cleaners.document import Caution
from cleaners.textbytes import LineBytes

DEFAULT_MODEL = Path(__file__).parent / "models" / "line_model.json"
# Decision thresholds on p(junk), one per Caution level: the normal one is stored in the model; the
# cautious one is used when much of a document would go on middling evidence (CleanConfig.max_uncertain_share),
# the conservative one by the safety valve when a document would be eaten. Chosen out of fold on the dev set
# (docs/line-classifier.md).
CAUTIOUS_THRESHOLD = 0.8
CONSERVATIVE_THRESHOLD = 0.95
TOP_FEATURES = 3
# Lines scored per feature pass. Features are per document, so any split gives the same probabilities;
# ~16,000 lines keep numpy's temporaries in cache: the judge ran 1.5x faster than on 256 whole documents
# (~60,000 lines) and 2.7x faster than on 1,024 (dev set, best of 5).
JUDGE_CHUNK_LINES = 16_384


def _leaf_deltas(evaluator: linejudge.Oblivious) -> np.ndarray:
    """A (trees, depth, leaves) table: how much each split moved the expected leaf value on the path
    to each leaf (Saabas path attribution), so one row's attribution is a lookup by its leaf."""
    tables = []
    for split_f, leaves, weights in zip(evaluator.split_f, evaluator.leaves, evaluator.weights, strict=True):
        leaves = np.asarray(leaves, np.float64)
        weights = np.asarray(weights, np.float64)
        if len(weights) != len(leaves) or weights.sum() <= 0:
            weights = np.ones_like(leaves)
        ids = np.arange(len(leaves))
        expected = []  # per depth: mean leaf value below each prefix of split outcomes
        for depth in range(len(split_f) + 1):
            size = 1 << depth
            total = np.bincount(ids & (size - 1), weights=leaves * weights, minlength=size)
            mass = np.bincount(ids & (size - 1), weights=weights, minlength=size)
            expected.append(np.where(mass > 0, total / np.maximum(mass, 1e-12), 0.0))
        deltas = np.stack([expected[d + 1][ids & ((2 << d) - 1)] - expected[d][ids & ((1 << d) - 1)]
                           for d in range(len(split_f))])
        tables.append(deltas.astype(np.float32))
    return np.stack(tables)


def _chunks(offsets: np.ndarray, target_lines: int) -> list[tuple[int, int]]:
    """Consecutive document ranges of at least ``target_lines`` lines each (the last one may hold fewer): a range
    closes at the first document that takes it to ``target_lines``, so a long document ends the range it is in."""
    bounds = [0]
    for index in range(1, len(offsets)):
        if offsets[index] - offsets[bounds[-1]] >= target_lines or index == len(offsets) - 1:
            bounds.append(index)
    return list(itertools.pairwise(bounds))


# Hundredths are int64: a value is clipped to +-1e15 before rounding (features and pushes are far smaller).
_HUNDREDTHS_LIMIT = 1e15


def _hundredths(values: np.ndarray) -> np.ndarray:
    """``values`` rounded to 2 decimals (numpy's half-to-even), times 100, as int64."""
    scaled = np.round(values.astype(np.float64) * 100.0)
    return np.clip(scaled, -_HUNDREDTHS_LIMIT, _HUNDREDTHS_LIMIT).astype(np.int64)


def _reasons(model: LearnedLineJudge, columns: np.ndarray, leaves: np.ndarray, p1: np.ndarray, rows: np.ndarray,
             p: np.ndarray) -> list[str]:
    """The reason of each requested row, formatted for the whole batch at once: the attributions and their
    top features come from one compiled pass over the rows' recorded leaves, the text from another
    (cleaners.kernels.format_reasons). Per-row Python formatting was a quarter of the cleaner's time, Arrow's
    string kernels over 30 columns 0.3 s of the dev set's cleaning; the compiled form ~0.05 s. Zero reads "0"
    (never "-0"); a push is signed "+" when it is not negative."""
    if not len(rows):
        return []
    k = TOP_FEATURES
    top, pushes = kernels.top_attributions(leaves, np.ascontiguousarray(rows, np.int64), model.stage1.split_f_table,
                                           model.deltas, len(model.stage1.features), k)
    values = columns[top, rows[None, :]]
    data, _offsets = kernels.format_reasons(model.reason_head, _ALONE, _TOWARDS, model.feature_names,
                                            model.feature_name_offsets, _hundredths(p), _hundredths(p1[rows]),
                                            top, _hundredths(values), _hundredths(pushes), pushes >= 0)
    # Each reason ends with a newline: one split, instead of a slice per row (0.06 s of the dev set's cleaning).
    return data[:-1].tobytes().decode("ascii").split("\n")


_ALONE = np.frombuffer(b"; line alone p=", np.uint8)
_TOWARDS = np.frombuffer(b"; towards junk: ", np.uint8)


@dataclass(frozen=True, slots=True)
class _ScoredChunk:
    """What one feature pass kept for explanations: its lines' stage-1 features (feature-major), each line's
    stage-1 leaf per tree, and stage-1 probability. Kept per chunk: concatenating them for a whole batch
    copied ~100 MB per 512 documents."""

    columns: np.ndarray
    leaves: np.ndarray | None
    p1: np.ndarray


@dataclass
class Judgement:
    """Probabilities for one batch; the attributions that explain junk lines are computed on request,
    for all the requested lines of the batch at once."""

    probabilities: list[np.ndarray]  # per document, every line (blank lines: 1.0)
    _model: LearnedLineJudge
    _chunks: list[_ScoredChunk]
    _chunk_starts: np.ndarray        # the first row (non-blank line of the batch) of each chunk
    _row_of: np.ndarray              # flat line position (document offset + line) -> row, -1 if blank
    _offsets: np.ndarray             # flat position of each document's first line
    _flat: np.ndarray                # the probabilities of all documents, end to end

    def explain_many(self, doc_indices: np.ndarray, line_indices: np.ndarray) -> list[str]:
        if not len(doc_indices):
            return []
        flat = self._offsets[np.asarray(doc_indices, np.int64)] + np.asarray(line_indices, np.int64)
        rows = self._row_of[flat]
        out = ["blank line"] * len(rows)
        known = np.flatnonzero(rows >= 0)
        if not len(known):
            return out
        owner = np.searchsorted(self._chunk_starts, rows[known], side="right") - 1
        for index in np.unique(owner).tolist():
            mine = known[owner == index]
            chunk = self._chunks[index]
            reasons = _reasons(self._model, chunk.columns, chunk.leaves, chunk.p1,
                               rows[mine] - self._chunk_starts[index], self._flat[flat[mine]])
            for k, reason in zip(mine.tolist(), reasons, strict=True):
                out[k] = reason
        return out


class LearnedLineJudge:
    """Adapter from ``cleaners.linejudge.LineJudge`` to the cleaner's ``LineJudge`` protocol."""

    def __init__(self, path: Path = DEFAULT_MODEL) -> None:
        self.model = linejudge.LineJudge.load(str(path))
        if not isinstance(self.model.s1, linejudge.Oblivious):
            # Every removal names the features that decided it: attributions read the leaves of oblivious trees.
            raise ValueError(f"{path}: the cleaner explains each removal from the leaves of oblivious trees, and this "
                             f"model's stage 1 is {type(self.model.s1).__name__}; train it with --model cb "
                             "(scripts/training/train_line_model.py)")
        self.threshold = self.model.threshold
        # The model file's digest: written into every reason, so a removal names the exact model.
        self.version = "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
        self.stage1 = self.model.s1
        self.deltas = _leaf_deltas(self.stage1)
        # What the reasons are written from (cleaners.kernels.format_reasons): ASCII bytes.
        self.reason_head = np.frombuffer(f"line classifier {self.version}: p(junk)=".encode("ascii"), np.uint8)
        names = [name.encode("ascii") for name in self.stage1.features]
        self.feature_names = np.frombuffer(b"".join(names), np.uint8)
        self.feature_name_offsets = np.cumsum([0, *map(len, names)]).astype(np.int64)

    def judge(self, docs: Sequence[Sequence[str]], template_share: Sequence[Sequence[float] | np.ndarray],
              stripped: bool = False, utf8: LineBytes | None = None) -> Judgement:
        sizes = np.fromiter((len(d) for d in docs), np.int64, len(docs))
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        if utf8 is not None and len(utf8.starts) != offsets[-1]:
            raise ValueError(f"utf8 holds {len(utf8.starts)} lines, the documents {offsets[-1]}")
        flat = np.ones(int(offsets[-1]), np.float64)
        row_of = np.full(int(offsets[-1]), -1, np.int64)
        chunks: list[_ScoredChunk] = []
        starts: list[int] = []
        rows = 0
        for first, last in _chunks(offsets, JUDGE_CHUNK_LINES):
            lines = utf8.lines(int(offsets[first]), int(offsets[last])) if utf8 is not None else None
            batch, _features, c1, _, p = self.model._run(docs[first:last], template_share[first:last],
                                                         stripped=stripped, utf8=lines)
            flat_position = offsets[first:last][batch.doc_id] + batch.line_ix
            flat[flat_position] = p
            row_of[flat_position] = np.arange(rows, rows + len(flat_position))
            if c1 is not None:
                starts.append(rows)
                chunks.append(_ScoredChunk(c1, batch.leaves1, batch.p1 if batch.p1 is not None else p))
            rows += len(flat_position)
        probabilities = np.split(flat, offsets[1:-1]) if len(docs) else []
        return Judgement(probabilities, self, chunks, np.asarray(starts, np.int64), row_of, offsets[:-1], flat)

    def decide(self, probabilities: np.ndarray, caution: Caution) -> np.ndarray:
        threshold = {Caution.NORMAL: self.threshold, Caution.CAUTIOUS: max(self.threshold, CAUTIOUS_THRESHOLD),
                     Caution.CONSERVATIVE: max(self.threshold, CONSERVATIVE_THRESHOLD)}[caution]
        return np.asarray(probabilities) >= threshold


@functools.cache
def default_judge() -> LearnedLineJudge:
    """The shipped model, loaded once per process (read-only afterwards)."""
    return LearnedLineJudge()
