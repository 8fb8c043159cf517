"""Backfill (`finsent backfill`): historical files through the live path, resumable, idempotent.

Each file row becomes the same `news.raw` message bytes an outside producer would send, and goes either
straight to the scoring path (`processor`: the scoring stage's `BatchProcessor`, the very code the live worker
runs) or, with `--via-kafka`, onto the topic (`transport`). Progress is stored per file and filter after every
batch, so Ctrl-C or a crash loses at most the batch in flight, and that batch is recognised as already stored
when it comes again. Re-running a finished file adds nothing. A file whose every row was rejected is not marked
done (its mapping was probably wrong): the run's report counts the rejections by reason, with an example line each.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
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

_LINE = re.compile(r"^line \d+: ")
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_NUMBER = re.compile(r"\d+")


@dataclass(slots=True)
class RejectReason:
    """The rows rejected for one reason: how many, the first one's reason in full, and where that row is."""

    count: int
    example: str  # the first row's reason, without its "line N: "
    position: str  # "file.csv:LINE" of that row

    @property
    def where(self) -> str:
        """`line 2 of file.csv` (`file.csv` alone when there is no line)."""
        name, _, line = self.position.rpartition(":")
        return f"line {line} of {name}" if name and line.isdigit() else self.position


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
    refused: list[str] = field(default_factory=list)  # files whose every row was rejected: not marked done
    first_reject: str | None = None  # the first reason a row was rejected, for a run where every row was
    reasons: dict[str, RejectReason] = field(default_factory=dict)  # by reason, its values and numbers left out

    @property
    def all_rejected(self) -> bool:
        """True when rows were read and every one was rejected: the run achieved nothing. Rows outside the dates were
        read as news (the mapping works), so a run with some is not a failure: with --since it may reject only the
        rows whose time cannot be read."""
        return _all_rejected(self.rows, self.skipped_rows, self.rejected)

    def reject(self, reason: str, position: str) -> None:
        """Count one rejected row under its reason (grouped with the same reason about other values or lines)."""
        self.rejected += 1
        self.first_reject = self.first_reject or reason
        text = _LINE.sub("", reason)
        key = _NUMBER.sub("N", _QUOTED.sub("'...'", text))
        if key in self.reasons:
            self.reasons[key].count += 1
        else:
            self.reasons[key] = RejectReason(1, text, position)

    def top_reasons(self, n: int = 3) -> list[RejectReason]:
        """The n reasons that rejected the most rows, most first (the first seen first among equals)."""
        return sorted(self.reasons.values(), key=lambda r: -r.count)[:n]


def _all_rejected(rows: int, skipped: int, rejected: int) -> bool:
    return rows > 0 and skipped == 0 and rejected >= rows


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
    rejections: list[Rejection]


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
    mappings: Mapping[Path, FieldMapping] = field(default_factory=dict)  # per file, over `mapping` (detected columns)
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
        mapping = self.mappings.get(path, self.mapping)
        # The default mapping keys like no mapping, so files backfilled before columns were detected stay done.
        keyed = None if mapping == FieldMapping() else mapping
        run_key = hashlib.sha256(f"{sha}|{self.since}|{self.until}|{self.source}|{keyed}".encode()).hexdigest()
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
        rows_before, skipped_before, rejected_before = report.rows, report.skipped_rows, report.rejected

        def commit_batch(last: bool = False, changed: bool = False) -> None:
            nonlocal done, rows_in_batch, envelopes, rejections
            for rejection in rejections:  # counted before the batch's: a file's first reason is usually one of these
                report.reject(rejection.reason, (rejection.origin or path.name).split("@")[0])
            if envelopes:
                if self.processor is not None:
                    out = self.processor.process(envelopes)
                    report.stored += out.stored
                    report.duplicates += out.duplicates
                    for rejection in out.rejections:  # every row, also one rejected by an earlier run
                        report.reject(rejection.reason, (rejection.origin or path.name).split("@")[0])
                else:
                    for env in envelopes:
                        self.transport.publish(self.topic, env.key, env.value)
                    self.transport.flush()  # the broker has the batch before progress says so
                report.sent += len(envelopes)
            # A file done is one that changed nothing under the reader and had a row not rejected; otherwise its
            # progress goes back to where this run started, so the next run (a fixed mapping) reads it again.
            rows, skipped = report.rows - rows_before, report.skipped_rows - skipped_before
            refused = last and _all_rejected(rows, skipped, report.rejected - rejected_before)
            if refused and not changed:
                report.refused.append(str(path))
                log.info("%s: every row was rejected; not marked done", path)
            with self.session_factory() as session, session.begin():
                record_rejects(session=session, rejections=rejections)  # a row rejected before is kept once
                state = session.scalar(select(BackfillProgress).where(BackfillProgress.run_key == run_key))
                state.rows_done = start if changed or refused else done + rows_in_batch
                state.updated_at = datetime.now(UTC)
                if last and not (changed or refused):
                    state.finished_at = state.updated_at
            done += rows_in_batch
            bar.update(rows_in_batch)
            bar.set_postfix(stored=report.stored, dup=report.duplicates, rej=report.rejected)
            envelopes, rejections, rows_in_batch = [], [], 0

        try:
            for record in read_file(path, source=self.source, mapping=mapping, start=start):
                rows_in_batch += 1
                report.rows += 1
                origin = f"{record.position}@{sha[:10]}"  # the content: two files named alike never collide
                if record.error is not None:
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
            commit_batch(last=True, changed=changed)
        finally:
            bar.close()

    def _outside(self, when: datetime | None) -> bool:
        if self.since is not None and (when is None or when < self.since):
            return True
        return self.until is not None and (when is None or when >= self.until)
