"""Shared fixtures. Real files, real checkpoints, a real PostgreSQL server and a real Kafka-protocol broker."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    """`gpu` tests run only where torch sees a CUDA device."""
    if not any("gpu" in item.keywords for item in items):
        return  # no torch import (seconds on a busy machine) for runs that collect no gpu test
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    assert SHARED_DATA.is_dir(), f"the development data must sit beside the repo at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture(scope="session")
def checkpoint() -> Path:
    """The shipped checkpoint (model/weights/DEFAULT)."""
    from model.checkpoints import default_checkpoint

    return default_checkpoint()


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    from model.train import default_encoder_dir

    return AutoTokenizer.from_pretrained(default_encoder_dir())


def tiny_config(tokenizer, **overrides):
    from model.network import NetworkConfig

    encoder = dict(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    return NetworkConfig(encoder=encoder, **overrides)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tokenizer) -> Path:
    """A random-initialised tiny network saved as a checkpoint: fast tests of the scorer's mechanics."""
    import torch

    from model.network import SentimentNet
    from model.train import save_checkpoint

    torch.manual_seed(0)
    net = SentimentNet(tiny_config(tokenizer, max_length=24))
    _, path = save_checkpoint(net, tokenizer, tmp_path_factory.mktemp("weights"), "tiny")
    return path


@pytest.fixture(scope="session")
def scorer_fp32(checkpoint):
    from model.scorer import Scorer

    return Scorer(checkpoint, device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def scorer_default(checkpoint):
    from model.scorer import Scorer

    return Scorer(checkpoint, device="cpu")


# ------------------------------------------------------------------------------------------------ PostgreSQL

# Trust auth on 127.0.0.1; override with FINSENT_TEST_POSTGRES (a server URL; its database is the maintenance db).
POSTGRES_SERVER = os.environ.get("FINSENT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


def _maintenance_connection():
    import psycopg

    errors = []
    for dbname in ("postgres", "test"):
        try:
            return psycopg.connect(f"{POSTGRES_SERVER}/{dbname}", autocommit=True, connect_timeout=3)
        except psycopg.OperationalError as exc:
            errors.append(f"{dbname}: {exc}".strip())
    # A failure, not a skip: `make test` promises PostgreSQL coverage, and a skip would hide its absence.
    pytest.fail(f"PostgreSQL not reachable at {POSTGRES_SERVER}: {'; '.join(errors)}")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty database on the PostgreSQL server, dropped afterwards (even if connections linger)."""
    name = f"finsent_test_{uuid.uuid4().hex[:12]}"
    with _maintenance_connection() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        with _maintenance_connection() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


BACKENDS = [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def empty_url(request, tmp_path) -> str:
    """The URL of an empty database: a SQLite file in tmp_path, or a throw-away PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'finsent.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def migrated_engine(empty_url):
    """An engine on a database migrated to head (the only way finsent creates its schema)."""
    from core.db import make_engine, upgrade

    upgrade(empty_url)
    engine = make_engine(empty_url)
    yield engine
    engine.dispose()  # before the postgres fixture drops the database


# ----------------------------------------------------------------------------------------------------- Kafka


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory) -> Iterator[str]:
    """A real Kafka-protocol broker (tansu, in memory) on a free 127.0.0.1 port: its bootstrap address."""
    from tests.support.broker import BrokerError, local_broker

    try:
        with local_broker(tmp_path_factory.mktemp("tansu") / "tansu.log") as bootstrap:
            yield bootstrap
    except BrokerError as exc:
        pytest.fail(str(exc))
