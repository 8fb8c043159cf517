"""The active model version: FINSENT_MODEL_VERSION (checked as a folder name), else the shipped default; which
versions a database holds; and what "unknown" means for a reader (no checkpoint here and no score stored)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from core.db import make_session_factory
from core.settings import Settings
from core.versions import VersionError, check_version, has_scores, scored_versions
from model.checkpoints import WEIGHTS_DIR, active_version, default_version, version_checkpoint
from tests.support.versions import ACTIVE, CANDIDATE, OLD_DAYS, seed_two_versions

T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SHIPPED = (WEIGHTS_DIR / "DEFAULT").read_text().strip()


def test_the_setting_defaults_to_the_shipped_version(monkeypatch):
    monkeypatch.delenv("FINSENT_MODEL_VERSION", raising=False)
    assert Settings().model_version is None and active_version(Settings().model_version) == SHIPPED
    assert default_version() == SHIPPED
    monkeypatch.setenv("FINSENT_MODEL_VERSION", "")  # as an .env file leaves it: the default
    assert Settings().model_version is None
    monkeypatch.setenv("FINSENT_MODEL_VERSION", CANDIDATE)
    assert active_version(Settings().model_version) == CANDIDATE


@pytest.mark.parametrize("bad", ["../weights", "a/b", ".hidden", "x" * 65, "two words"])
def test_a_version_is_a_folder_name(monkeypatch, bad):
    monkeypatch.setenv("FINSENT_MODEL_VERSION", bad)
    with pytest.raises(ValidationError, match="model_version"):
        Settings()
    assert version_checkpoint(bad) is None


def test_version_checkpoint_finds_only_a_network_in_model_weights():
    assert version_checkpoint(SHIPPED) == WEIGHTS_DIR / SHIPPED
    assert version_checkpoint("DEFAULT") is None  # the pointer file, not a checkpoint
    assert version_checkpoint(CANDIDATE) is None


def test_stored_versions_and_what_unknown_means(migrated_engine):
    seed_two_versions(migrated_engine, T)
    old = (T - timedelta(days=OLD_DAYS + 1), T - timedelta(days=OLD_DAYS - 1))
    with make_session_factory(migrated_engine)() as s:
        assert scored_versions(s) == [ACTIVE, CANDIDATE]
        assert scored_versions(s, since=old[0], until=old[1]) == [CANDIDATE]
        assert scored_versions(s, exclude=[CANDIDATE]) == [ACTIVE] and scored_versions(s, at_most=1) == [ACTIVE]
        assert has_scores(s, ACTIVE, since=T - timedelta(hours=1))
        assert not has_scores(s, ACTIVE, since=old[0], until=old[1])
        check_version(s, CANDIDATE, has_checkpoint=False)  # scores, no checkpoint: history scored elsewhere
        check_version(s, SHIPPED, has_checkpoint=True)  # a checkpoint, no scores yet: it will score
        with pytest.raises(VersionError) as raised:
            check_version(s, "nowhere", has_checkpoint=False)
    assert str(raised.value) == (
        "FINSENT_MODEL_VERSION=nowhere: no such model version: no checkpoint model/weights/nowhere here and no score "
        f"by it in the database (versions with scores: {ACTIVE}, {CANDIDATE})"
    )
