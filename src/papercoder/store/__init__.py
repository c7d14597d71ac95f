"""The run store: SQLite log of every model exchange, which is also the response cache."""

from papercoder.store.db import Exchange, RunRecord, Store, cache_key

__all__ = ["Exchange", "RunRecord", "Store", "cache_key"]
