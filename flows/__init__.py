"""Prefect flows over the ``cleaners`` library. Flows stay thin: plan, fan out shards, summarize."""
