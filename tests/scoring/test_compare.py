"""scoring.compare on the two-version database (tests/support/versions.py), on SQLite and PostgreSQL: the counts of
`finsent model compare`, the articles only one version scored, and the versions it refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.db import make_session_factory
from core.versions import VersionError
from scoring.compare import compare_versions
from tests.support.versions import ACTIVE, CANDIDATE, OLD_DAYS, seed_two_versions

T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def session(migrated_engine):
    seed_two_versions(migrated_engine, T)
    with make_session_factory(migrated_engine)() as s:
        yield s


def test_agreement_shift_change_and_flips(session):
    result = compare_versions(session=session, active=ACTIVE, candidate=CANDIDATE, examples=4)
    assert (result.compared, result.agreed, result.agreement) == (8, 2, 0.25)
    assert result.shift == {
        "negative": {"negative": 0, "neutral": 3, "positive": 0},  # Apple
        "neutral": {"negative": 0, "neutral": 0, "positive": 0},
        "positive": {"negative": 3, "neutral": 0, "positive": 2},  # Nokia; Microsoft agrees
    }
    assert result.mean_score_change == pytest.approx((3 * (0.0 + 0.8) + 3 * (-0.6 - 0.75) + 2 * (0.5 - 0.6)) / 8)
    assert (result.only_active, result.only_candidate) == (1, 4)
    # The largest changes first: Nokia's 1.35, then Apple's 0.8 (the lowest article id first among equals).
    assert [(f.title, f.active_label, f.candidate_label, f.active_score, f.candidate_score) for f in result.flips] == [
        ("Nokia wins 5G deal in India", "positive", "negative", 0.75, -0.6),
        ("Nokia raises margin target", "positive", "negative", 0.75, -0.6),
        ("Nokia shares jump on network orders", "positive", "negative", 0.75, -0.6),
        ("Apple cuts iPhone forecast", "negative", "neutral", -0.8, 0.0),
    ]
    as_json = result.as_json()
    assert as_json["agreement"] == 0.25 and len(as_json["flips"]) == 4 and as_json["since"] is None


def test_a_range_and_articles_only_one_version_scored(session):
    recent = compare_versions(session=session, active=ACTIVE, candidate=CANDIDATE, since=T - timedelta(days=1))
    assert (recent.compared, recent.only_active, recent.only_candidate) == (8, 1, 0)
    old = compare_versions(session=session, active=ACTIVE, candidate=CANDIDATE, until=T - timedelta(days=OLD_DAYS - 1))
    assert (old.compared, old.agreement, old.mean_score_change, old.flips) == (0, None, None, [])
    assert (old.only_active, old.only_candidate) == (0, 4)
    # Reversed roles: the same articles, the shift transposed.
    back = compare_versions(session=session, active=CANDIDATE, candidate=ACTIVE)
    assert (back.compared, back.agreed, back.only_active, back.only_candidate) == (8, 2, 4, 1)
    assert back.shift["neutral"]["negative"] == 3 and back.shift["negative"]["positive"] == 3


def test_a_candidate_without_scores_or_the_active_version_itself_is_refused(session):
    with pytest.raises(VersionError, match=f"no-such has no scores in the database .*{CANDIDATE}"):
        compare_versions(session=session, active=ACTIVE, candidate="no-such")
    with pytest.raises(ValueError, match="is the active version itself"):
        compare_versions(session=session, active=ACTIVE, candidate=ACTIVE)
