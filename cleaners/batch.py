"""Clean a batch of texts in memory with both passes (line counting, then cleaning).

The flow does the same over files and shards with the counts kept in the output; this is the
in-memory form for notebooks, benchmarks and tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cleaners.boilerplate import KeyedTexts, LineCounter, LineStats, count_lines
from cleaners.document import CleanConfig, DocumentInput, LineJudge, clean_documents
from cleaners.rulepack import RuleSet
from cleaners.types import CleanResult


@dataclass(frozen=True, slots=True)
class BatchItem:
    source: str
    text: str
    title: str | None = None


def clean_batch(items: Sequence[BatchItem], rules: RuleSet, config: CleanConfig | None = None,
                history: LineStats | None = None, judge: LineJudge | None = None,
                batch_docs: int = 512) -> list[CleanResult]:
    """Pass 1 counts lines per source over ``items`` (plus ``history``), pass 2 cleans each item.

    Pass 2 looks its lines up with the keys pass 1 computed (kept per batch: 9 bytes a line), instead of keying
    every text again."""
    counter = LineCounter(keep_samples=False)  # the counts are used here, never written: no line samples
    keyed: list[KeyedTexts] = []
    for start in range(0, len(items), batch_docs):
        chunk = items[start:start + batch_docs]
        keyed.append(KeyedTexts.of([item.text for item in chunk]))
        counter.add_keyed([item.source for item in chunk], keyed[-1])
    stats = counter.to_stats()
    if history is not None:
        stats = LineStats.merge(history, stats)
    results: list[CleanResult] = []
    for start, line_keys in zip(range(0, len(items), batch_docs), keyed, strict=True):
        chunk = [DocumentInput(i.text, i.source, i.title) for i in items[start:start + batch_docs]]
        results.extend(clean_documents(chunk, rules, config=config, line_stats=stats, judge=judge,
                                       line_keys=line_keys))
    return results


def warm_up() -> float:
    """Compile the numba kernels (cleaners.kernels), or load them from numba's cache, by cleaning a few small
    documents through both passes with the shipped model. Returns the seconds it took.

    The first use after installing compiles them (~10 s on 2 cores); later processes load them from the
    cache (<1 s). ``make`` runs this once at setup, and the benchmarks before they measure.
    """
    import time

    from cleaners.linemodel import default_judge
    from cleaners.rulepack import load_rules

    started = time.perf_counter()
    template = "Home | News | Sport\nShare this article\n"
    items = [BatchItem("warm-up.example", f"Title {i}\n{template}Story {i} of the day, with words.\n\nÀ bientôt “{i}”.")
             for i in range(6)]
    clean_batch(items, load_rules(), judge=default_judge())
    count_lines([(item.source, item.text) for item in items])  # pass 1 as the flow runs it: with line samples
    return time.perf_counter() - started
