"""Every item of the hostile corpus through the real worker path (BatchProcessor on a migrated SQLite and PostgreSQL
database, the shipped default scorer): stored (and rendered safely), rejected with a reason and kept in `rejects`, or
counted as a duplicate; the totals add up, a redelivery adds nothing, and the processor keeps working."""

from __future__ import annotations

import html
import json
import re
from collections import Counter

import pytest
from sqlalchemy import func, inspect, select

from core.db import make_session_factory
from core.messages import Envelope
from core.rejects import MAX_KEPT_PAYLOAD
from core.schema import Article, Mention, Reject, Score, Source
from dashboard.render import escape, highlight, link
from monitor.notify import slack_escape
from scoring.pipeline import Pipeline
from scoring.processor import BatchProcessor

from .corpus import BATCH_OF, CLASSES, NOW, SQL_TITLE, Case

COUNTS_FILE = "hostile_counts.json"  # per backend, under tests/artifacts/, for the record


def envelopes(name: str, cases: list[Case]) -> list[Envelope]:
    return [Envelope(value=c.value, origin=f"hostile:{name}:{i}") for i, c in enumerate(cases)]


def stored_rows(session, ids: list[int]) -> dict[int, dict]:
    rows = {}
    query = select(Article, Source.name).join(Source, Source.id == Article.source_id).where(Article.id.in_(ids))
    for article, source in session.execute(query):
        rows[article.id] = {
            "title": article.title,
            "body": article.body,
            "url": article.url,
            "source": source,
            "external_id": article.external_id,
            "published_at": article.published_at,
            "published_at_fallback": article.published_at_fallback,
            "tickers": list(session.scalars(select(Mention.ticker).where(Mention.article_id == article.id))),
        }
    return rows


OWN_SPAN = re.compile(r'<span class="fs-word" style="[^"<>]*" title="weight [0-9.-]+">|</span>')


def assert_renders_safely(title: str, url: str | None) -> None:
    """The stored headline as the dashboard and Slack show it: inert text that reads exactly as the headline."""
    assert "<" not in escape(title) and ">" not in escape(title) and html.unescape(escape(title)) == title
    highlighted = OWN_SPAN.sub("", highlight(title, [(0, min(5, len(title)), 1.0)], "negative"))
    assert "<" not in highlighted and html.unescape(highlighted) == title
    slack = slack_escape(title)
    assert "<" not in slack and ">" not in slack and html.unescape(slack) == title
    shown = link(url, title)  # a link only for http(s) URLs: a javascript: url is shown as the plain title
    assert ("href" in shown) == bool(url and url.lower().startswith(("http://", "https://")))


def run_class(processor: BatchProcessor, name: str, cases: list[Case]) -> Counter:
    """Push one class through `process` and check every item's outcome; returns stored/rejected/duplicates counts."""
    envs = envelopes(name, cases)
    size = BATCH_OF.get(name, len(envs))
    reports = [processor.process(envs[i : i + size], now=NOW) for i in range(0, len(envs), size)]
    counts = Counter(
        received=sum(r.received for r in reports),
        stored=sum(r.stored for r in reports),
        rejected=sum(r.rejected for r in reports),
        duplicates=sum(r.duplicates for r in reports),
    )
    expected = Counter(c.expect for c in cases)
    assert (counts["stored"], counts["rejected"], counts["duplicates"]) == (
        expected["stored"],
        expected["rejected"],
        expected["duplicate"],
    ), f"{name}: {dict(counts)}, expected {dict(expected)}"
    assert counts["received"] == counts["stored"] + counts["rejected"] + counts["duplicates"] == len(cases)

    # Rejects: each one named in the report and kept in the table with its stage, reason and exact bytes.
    rejections = {r.origin: r for report in reports for r in report.rejections}
    ids = [i for report in reports for i in report.article_ids]
    with processor.session_factory() as session:
        kept = {r.origin: r for r in session.scalars(select(Reject).where(Reject.origin.like(f"hostile:{name}:%")))}
        rows = stored_rows(session, ids)
    for env, case in zip(envs, cases, strict=True):
        if case.expect != "rejected":
            assert env.origin not in rejections, (name, case.name, rejections.get(env.origin))
            continue
        assert env.origin in rejections and env.origin in kept, (name, case.name)
        row = kept[env.origin]
        assert (row.stage, case.reason in row.reason) == (case.stage, True), (name, case.name, row.stage, row.reason)
        assert row.payload == (case.value[:MAX_KEPT_PAYLOAD] if case.value is not None else None)

    # Stored items, in the order they were admitted: the stored headline exactly as documented, rendered safely.
    stored_cases = [c for c in cases if c.expect == "stored"]
    assert len(ids) == len(stored_cases)
    for article_id, case in zip(ids, stored_cases, strict=True):
        row = rows[article_id]
        assert row["title"] == case.title, (name, case.name, row["title"][:200])
        assert_renders_safely(row["title"], row["url"])
        if case.check:
            case.check(row)
    return counts


@pytest.fixture
def processor(migrated_engine, scorer_default):
    return BatchProcessor(
        session_factory=make_session_factory(migrated_engine), scorer=scorer_default, pipeline=Pipeline()
    )


def test_every_hostile_input_is_stored_rejected_or_a_duplicate(processor, migrated_engine, request):
    per_class: dict[str, dict[str, int]] = {}
    corpus = {name: build() for name, build in CLASSES.items()}
    for name, cases in corpus.items():
        per_class[name] = dict(run_class(processor, name, cases))

    # Totals: received = stored + duplicates + rejected, and the database holds exactly the stored and rejected ones.
    total = Counter()
    for counts in per_class.values():
        total.update(counts)
    assert total["received"] == total["stored"] + total["duplicates"] + total["rejected"]
    with processor.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Article)) == total["stored"]
        assert session.scalar(select(func.count()).select_from(Score)) == total["stored"]
        assert session.scalar(select(func.count()).select_from(Reject)) == total["rejected"]
        # SQL-looking strings were stored as text: every table is still there, the headline verbatim.
        assert session.scalar(select(func.count()).where(Article.title == SQL_TITLE)) == 1
        assert session.scalar(select(func.count()).where(Source.name == "wire'; DELETE FROM sources;--")) == 1
    assert {"articles", "sources", "rejects", "mentions", "scores"} <= set(inspect(migrated_engine).get_table_names())

    # A redelivery of the whole corpus (a crash before the offset commit) adds nothing and counts nothing twice.
    again = Counter()
    for name, cases in corpus.items():
        size = BATCH_OF.get(name, len(cases))
        envs = envelopes(name, cases)
        for i in range(0, len(envs), size):
            report = processor.process(envs[i : i + size], now=NOW)
            again.update(stored=report.stored, rejected=report.rejected, duplicates=report.duplicates)
    assert again == Counter(duplicates=total["stored"] + total["duplicates"])

    # And the worker still works.
    fine = json.dumps({"source": "after", "title": "Nokia shares rise after upbeat outlook"}).encode()
    report = processor.process([Envelope(value=fine, origin="hostile:after:0")], now=NOW)
    assert (report.stored, report.rejected, report.duplicates) == (1, 0, 0)

    backend = migrated_engine.dialect.name
    print(f"\nhostile corpus on {backend}: class stored / rejected / duplicates")
    for name, counts in per_class.items():
        print(f"  {name:18} {counts['stored']:5} {counts['rejected']:5} {counts['duplicates']:5}")
    print(f"  {'total':18} {total['stored']:5} {total['rejected']:5} {total['duplicates']:5}")
    artifacts = request.config.rootpath / "tests" / "artifacts"
    artifacts.mkdir(exist_ok=True)
    path = artifacts / COUNTS_FILE
    recorded = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps(recorded | {backend: per_class}, indent=2) + "\n")
