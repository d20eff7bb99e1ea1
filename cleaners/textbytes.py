"""Batches of texts as one UTF-8 buffer with line offsets: what the compiled passes (cleaners.kernels) read."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np


def encode(text: str) -> bytes:
    """UTF-8, with lone surrogates kept (as the rest of the pipeline keeps them)."""
    return text.encode("utf-8", "surrogatepass")


def line_bounds(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Byte offsets where each ``\\n``-separated line of ``data`` starts and ends (numpy finds the newlines
    with SIMD; a compiled byte loop was 4x slower)."""
    breaks = np.flatnonzero(data == 10)
    return np.concatenate([[0], breaks + 1]), np.concatenate([breaks, [len(data)]])


def join(texts: Sequence[str]) -> bytes:
    """The texts encoded one by one and joined by newlines: joining them as str first widens every character
    to the widest text's width."""
    return b"\n".join(map(encode, texts))


def per_text(values: np.ndarray, texts: Sequence[str]) -> list[np.ndarray]:
    """Per-line ``values`` of :func:`join`\\ ed ``texts``, split back per text."""
    bounds = np.cumsum([0, *[text.count("\n") + 1 for text in texts]]).tolist()
    return [values[a:b] for a, b in itertools.pairwise(bounds)]

