"""boilerstrip's cleaning library: turn raw scraped article text into clean, explainable text.

This package never imports Prefect: flows in ``flows/`` orchestrate it, notebooks and tests call it
directly. The public entry points are re-exported here.
"""

from cleaners.document import CleanConfig, clean_document
from cleaners.rulepack import RuleSet, load_rules
from cleaners.shard import PIPELINE_VERSION
from cleaners.types import CleanResult, RawDocument, Reject, RemovedLine

__all__ = [
    "PIPELINE_VERSION",
    "CleanConfig",
    "CleanResult",
    "RawDocument",
    "Reject",
    "RemovedLine",
    "RuleSet",
    "clean_document",
    "load_rules",
]
