"""Time the first `update_buckets` after a backfill: the per-bucket fold it replaced against the set-based one.

    python bench/seed.py postgresql://postgres@127.0.0.1:5432/finsent_bench --articles 100000
    python bench/buckets.py postgresql://postgres@127.0.0.1:5432/finsent_bench --old-batches 1

The old fold (a SELECT, `aggregate`, a DELETE and an ORM add per bucket; copied below) runs for the first
--old-batches batches only (one query round per bucket is far too slow for a whole seed's history; docs/performance.md,
'Measurements behind code choices'); the new one runs for the same batches, whose buckets must come out the same, and
then (unless --no-all) for the whole history, of which --check random buckets are compared with `aggregate` over their
own rows. Every run is rolled back: the database is left as it was (window_buckets is emptied only inside the
transactions).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import delete, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from core.db import make_engine, make_session_factory  # noqa: E402
from core.schema import Article, MonitorState, WindowBucket  # noqa: E402
from core.settings import Settings  # noqa: E402
from model.checkpoints import active_version  # noqa: E402
from monitor import windows  # noqa: E402
from monitor.windows import _rows, aggregate  # noqa: E402


def old_store_bucket(session: Session, *, key: str, window_s: int, start: datetime, version: str) -> None:
    """The per-bucket write update_buckets used before (commit 55fba94)."""
    end = start + timedelta(seconds=window_s)
    stats = aggregate(_rows(session, key=key, start=start, end=end, version=version), key=key, window_s=window_s,
                      start=start, end=end)  # fmt: skip
    session.execute(
        delete(WindowBucket).where(
            WindowBucket.key == key, WindowBucket.window_s == window_s, WindowBucket.bucket_start == start
        )
    )
    session.add(WindowBucket(key=key, window_s=window_s, bucket_start=start, items=stats.items, stories=stats.stories,
                             mean_score=stats.mean_score, share_negative=stats.share_negative,
                             share_positive=stats.share_positive, updated_at=datetime.now(UTC)))  # fmt: skip


def batches(session: Session, size: int, limit: int | None):
    last, n = 0, 0
    while limit is None or n < limit:
        new = session.execute(
            select(Article.id, Article.published_at).where(Article.id > last).order_by(Article.id).limit(size)
        ).all()
        if not new:
            return
        yield new
        last, n = new[-1][0], n + 1


def fresh(session: Session) -> None:
    session.execute(delete(WindowBucket))
    session.execute(delete(MonitorState).where(MonitorState.name == "buckets_article_id"))


def snapshot(session: Session) -> dict:
    return {
        (b.key, b.window_s, b.bucket_start): (b.items, b.stories, b.share_negative, b.share_positive, b.mean_score)
        for b in session.scalars(select(WindowBucket))
    }


def same(a: tuple, b: tuple) -> bool:
    if a[:4] != b[:4] or (a[4] is None) != (b[4] is None):
        return False
    return a[4] is None or abs(a[4] - b[4]) <= 1e-9 * max(1.0, abs(a[4]))


def report(name: str, buckets: int, seconds: float) -> None:
    print(f"{name:34s} {buckets:9,d} buckets {seconds:8.1f} s {buckets / seconds:9,.0f} buckets/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--windows", default="900,3600,86400", help="window lengths in seconds, comma-separated")
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--old-batches", type=int, default=1, help="batches to run the old fold for (0: none)")
    parser.add_argument(
        "--all",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time update_buckets over the whole history (--no-all: only the first batches)",
    )
    parser.add_argument("--check", type=int, default=300, help="random buckets of the full run to verify")
    args = parser.parse_args()
    wins = [int(w) for w in args.windows.split(",")]
    engine = make_engine(args.url)
    sessions = make_session_factory(engine)
    with sessions() as s:
        version = active_version(Settings().model_version)  # what the monitor folds: FINSENT_MODEL_VERSION
        print(f"{s.scalar(select(Article.id).order_by(Article.id.desc()).limit(1)):,} articles (max id), "
              f"windows {wins}, batch {args.batch}, version {version}", flush=True)  # fmt: skip

    if args.old_batches:
        with sessions() as s, s.begin():
            fresh(s)
            started, count = time.perf_counter(), 0
            for new in batches(s, args.batch, args.old_batches):
                touched = windows._touched_buckets(s, new, windows=wins)  # the set the old fold gathered too
                for key, w, start in sorted(touched):
                    old_store_bucket(s, key=key, window_s=w, start=start, version=version)
                count += len(touched)
                s.flush()
            report(f"old, first {args.old_batches} batch(es)", count, time.perf_counter() - started)
            old = snapshot(s)
            s.rollback()
        with sessions() as s, s.begin():
            fresh(s)
            started, count = time.perf_counter(), 0
            for new in batches(s, args.batch, args.old_batches):
                touched = windows._touched_buckets(s, new, windows=wins)
                windows._store_buckets(s, touched, version=version)
                count += len(touched)
                s.flush()
            report(f"new, first {args.old_batches} batch(es)", count, time.perf_counter() - started)
            new_snapshot = snapshot(s)
            s.rollback()
        differ = [k for k in old if k not in new_snapshot or not same(old[k], new_snapshot[k])]
        print(f"same buckets as the old fold: {not differ and old.keys() == new_snapshot.keys()} "
              f"({len(old):,} buckets, {len(differ)} differ)", flush=True)  # fmt: skip

    if not args.all:
        engine.dispose()
        return
    with sessions() as s, s.begin():
        fresh(s)
        started = time.perf_counter()
        count = windows.update_buckets(s, windows=wins, version=version, batch=args.batch)
        report("new, update_buckets (all)", count, time.perf_counter() - started)
        stored = s.scalars(select(WindowBucket)).all()
        sample = random.Random(1).sample(stored, min(args.check, len(stored)))
        bad = 0
        for b in sample:
            end = b.bucket_start + timedelta(seconds=b.window_s)
            want = aggregate(_rows(s, key=b.key, start=b.bucket_start, end=end, version=version), key=b.key,
                             window_s=b.window_s, start=b.bucket_start, end=end)  # fmt: skip
            got = (b.items, b.stories, b.share_negative, b.share_positive, b.mean_score)
            bad += not same(got, (want.items, want.stories, want.share_negative, want.share_positive, want.mean_score))
        print(f"{len(stored):,} buckets stored; {len(sample)} sampled, {bad} differ from aggregate", flush=True)
        s.rollback()
    engine.dispose()


if __name__ == "__main__":
    main()
