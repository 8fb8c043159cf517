"""Backfill (`finsent backfill`): historical files through the live path, resumable, idempotent.

Each file row becomes the same `news.raw` message bytes an outside producer would send, and goes either
straight to the scoring path (`processor`: the scoring stage's `BatchProcessor`, the very code the live worker
runs) or, with `--via-kafka`, onto the topic (`transport`). Progress is stored per file and filter after every
batch, so Ctrl-C or a crash loses at most the batch in flight, and that batch is recognised as already stored
when it comes again. Re-running a finished file adds nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from tqdm import tqdm

from core.messages import Envelope
from core.rejects import Rejection, record_rejects
from core.schema import BackfillProgress
from core.transport import Transport
from ingest.sources.files import FieldMapping, count_rows, read_file

log = logging.getLogger(__name__)


@dataclass(slots=True)
class BackfillReport:
    """Totals over all files of one run."""

    files: int = 0
    rows: int = 0  # rows read in this run (a resumed file counts only the rest)
    skipped_rows: int = 0  # outside --since/--until
    sent: int = 0  # handed to the scoring path or the topic
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    already_done: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # files that changed while being read: not marked done
    first_reject: str | None = None  # the first reason a row was rejected, for a run where every row was

    @property
    def all_rejected(self) -> bool:
        """True when rows were read and every one inside the dates was rejected: the run achieved nothing."""
        wanted = self.rows - self.skipped_rows
        return wanted > 0 and self.rejected >= wanted


def file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _published(value: bytes) -> datetime | None:
    raw = json.loads(value).get("published_at")
    if not raw:
        return None
    when = datetime.fromisoformat(raw)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class Processed(Protocol):
    """What processing a batch reports back (the scoring stage's `BatchReport` has these and more)."""

    stored: int
    duplicates: int
    rejected: int


class Processor(Protocol):
    """Scores and stores a batch of envelopes in one transaction (the scoring stage's `BatchProcessor`)."""

    def process(self, envelopes: Sequence[Envelope]) -> Processed: ...


@dataclass
class Backfill:
    """One backfill run over files: exactly one of `processor` (direct) and `transport` (--via-kafka) is given."""

    session_factory: sessionmaker[Session]
    processor: Processor | None = None
    transport: Transport | None = None
    topic: str = "news.raw"
    since: datetime | None = None
    until: datetime | None = None
    source: str | None = None
    mapping: FieldMapping | None = None
    batch_size: int = 256
    progress: bool = True
    report: BackfillReport = field(default_factory=BackfillReport)

    def __post_init__(self) -> None:
        if (self.processor is None) == (self.transport is None):
            raise ValueError("give exactly one of processor (direct) and transport (--via-kafka)")

    def run(self, paths: Sequence[str | Path]) -> BackfillReport:
        """Score or publish every row of `paths` in [since, until); returns the run's totals."""
        for path in map(Path, paths):
            self.file(path)
        return self.report

    def file(self, path: Path) -> None:
        """One file, from where the last run with the same filters stopped."""
        sha = file_sha256(path)
        run_key = hashlib.sha256(f"{sha}|{self.since}|{self.until}|{self.source}|{self.mapping}".encode()).hexdigest()
        with self.session_factory() as session, session.begin():
            state = session.scalar(select(BackfillProgress).where(BackfillProgress.run_key == run_key))
            if state is None:
                state = BackfillProgress(run_key=run_key, path=str(path), rows_total=count_rows(path))
                session.add(state)
                session.flush()  # column defaults (rows_done = 0) are filled in on flush
            state.path = str(path)
            start, total, finished = state.rows_done, state.rows_total, state.finished_at
        self.report.files += 1
        if finished is not None:
            self.report.already_done.append(str(path))
            log.info("%s: finished on %s; nothing to do", path, finished.isoformat())
            return
        if start:
            log.info("%s: resuming after row %d of %d", path, start, total)
        report = self.report
        bar = tqdm(
            total=total, initial=start, desc=path.name, unit="row", dynamic_ncols=True, disable=not self.progress
        )
        done, rows_in_batch = start, 0
        envelopes: list[Envelope] = []
        rejections: list[Rejection] = []

        def commit_batch(finished: bool = False, rewind: bool = False) -> None:
            nonlocal done, rows_in_batch, envelopes, rejections
            if envelopes:
                if self.processor is not None:
                    out = self.processor.process(envelopes)
                    report.stored += out.stored
                    report.duplicates += out.duplicates
                    report.rejected += out.rejected
                    if report.first_reject is None and getattr(out, "rejections", None):
                        report.first_reject = out.rejections[0].reason
                else:
                    for env in envelopes:
                        self.transport.publish(self.topic, env.key, env.value)
                    self.transport.flush()  # the broker has the batch before progress says so
                report.sent += len(envelopes)
            with self.session_factory() as session, session.begin():
                report.rejected += record_rejects(session=session, rejections=rejections)
                state = session.scalar(select(BackfillProgress).where(BackfillProgress.run_key == run_key))
                state.rows_done = start if rewind else done + rows_in_batch
                state.updated_at = datetime.now(UTC)
                if finished:
                    state.finished_at = state.updated_at
            done += rows_in_batch
            bar.update(rows_in_batch)
            bar.set_postfix(stored=report.stored, dup=report.duplicates, rej=report.rejected)
            envelopes, rejections, rows_in_batch = [], [], 0

        try:
            for record in read_file(path, source=self.source, mapping=self.mapping, start=start):
                rows_in_batch += 1
                report.rows += 1
                origin = f"{record.position}@{sha[:10]}"  # the content: two files named alike never collide
                if record.error is not None:
                    report.first_reject = report.first_reject or record.error
                    rejections.append(
                        Rejection(
                            stage="read", reason=record.error, payload=record.raw, origin=origin, source=record.source
                        )
                    )
                elif self._outside(_published(record.value)):
                    report.skipped_rows += 1
                else:
                    key = f"{record.source}:{record.position}".encode()
                    envelopes.append(Envelope(value=record.value, origin=origin, key=key))
                if rows_in_batch >= self.batch_size:
                    commit_batch()
            # A file rewritten or truncated while it was read is not the file whose rows were counted: what was read
            # is stored, but the file is not marked done and its progress goes back to where this run started, so
            # the next run reads those rows again (the stored ones are recognised as duplicates; a row cut in half
            # by the change is read whole).
            changed = file_sha256(path) != sha
            if changed:
                report.changed.append(str(path))
                log.warning("%s: changed while it was read; not marked done, run the backfill again", path)
            commit_batch(finished=not changed, rewind=changed)
        finally:
            bar.close()

    def _outside(self, when: datetime | None) -> bool:
        if self.since is not None and (when is None or when < self.since):
            return True
        return self.until is not None and (when is None or when >= self.until)
