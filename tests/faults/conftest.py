"""Fixtures of the fault tests: a moto_server (S3 on 127.0.0.1), an S3-backed tansu broker that can be killed and
restarted with its data, a migrated PostgreSQL database, and finsent subprocesses that are always reaped."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import (
    ARTIFACTS,
    S3_ENV,
    FinsentProcess,
    S3Broker,
    free_port,
    stop_process,
    wait_for_port,
)


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory) -> Iterator[str]:
    """A moto_server on a free 127.0.0.1 port, for this session only: its endpoint URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    moto = Path(sys.executable).parent / "moto_server"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, log, "moto_server", timeout_s=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc, timeout_s=5)


@pytest.fixture
def fault_logs(request) -> Path:
    """tests/artifacts/faults/<test>/: the logs of the processes a test ran, kept after it for reading."""
    import shutil

    path = ARTIFACTS / "faults" / request.node.name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@pytest.fixture
def s3_broker(moto_endpoint, fault_logs) -> Iterator[S3Broker]:
    """tansu on a fresh bucket of the moto server (nothing from another test), started; killed at teardown."""
    import boto3

    bucket = f"tansu-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name=S3_ENV["AWS_DEFAULT_REGION"],
        aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
    )
    s3.create_bucket(Bucket=bucket)
    broker = S3Broker(endpoint=moto_endpoint, bucket=bucket, log_dir=fault_logs)
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture
def fault_db(postgres_url) -> str:
    """A migrated, empty PostgreSQL database (dropped by `postgres_url` afterwards)."""
    from core.db import upgrade

    upgrade(postgres_url)
    return postgres_url


@pytest.fixture
def finsent(fault_logs) -> Iterator:
    """`finsent(name, args, env)` → a FinsentProcess (not started); every one is stopped at teardown."""
    made: list[FinsentProcess] = []

    def make(name: str, args: list[str], env: dict[str, str]) -> FinsentProcess:
        proc = FinsentProcess(name, args, env, fault_logs)
        made.append(proc)
        return proc

    yield make
    for proc in made:
        if proc.alive:
            proc.kill()
