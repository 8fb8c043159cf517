"""Where news comes from: files (CSV, JSON Lines) and RSS/Atom feeds, each read into `RawRecord`s."""

from ingest.sources.record import RawRecord

__all__ = ["RawRecord"]
