"""The stack the fault tests break: an S3-backed tansu broker on a local moto_server, `finsent score` / `finsent
monitor` subprocesses, a producer that keeps publishing through outages, and the ledger that checks nothing was lost.

Everything runs on 127.0.0.1 on free ports and is killed by the fixtures at teardown; the finsent processes are
driven through the CLI with FINSENT_* settings only, so the tests stay black-box.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "news_stream"
FILES = ("benzinga_analyst_ratings_sample.csv", "cnbc_guardian_2017_2020.csv", "reuters21578_1987.csv")
ARTIFACTS = REPO / "tests" / "artifacts"
FINSENT = Path(sys.executable).parent / "finsent"
S3_ENV = {  # moto accepts any credentials; tansu's object store reads these
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, log: Path, what: str, timeout_s: float = 20) -> None:
    """Return once 127.0.0.1:`port` accepts connections; fail with the log's tail if `proc` died or it took too long."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not listen on {port} within {timeout_s:g} s") from None
            time.sleep(0.05)


def stop_process(proc: subprocess.Popen | None, timeout_s: float = 10) -> int | None:
    """SIGTERM, then SIGKILL after `timeout_s`; the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


# ------------------------------------------------------------------------------------------------ processes


class S3Broker:
    """tansu with `--storage-engine s3://BUCKET/` on moto: topics, messages and group offsets survive a kill."""

    def __init__(self, *, endpoint: str, bucket: str, log_dir: Path) -> None:
        self.endpoint, self.bucket, self.log_dir = endpoint, bucket, log_dir
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        """Start (or restart, on the same port) the broker and wait until it accepts connections."""
        from tests.support.broker import tansu_binary

        self.starts += 1
        log = self.log_dir / f"tansu-{self.starts}.log"
        url = f"tcp://127.0.0.1:{self.port}"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", f"s3://{self.bucket}/"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **S3_ENV, "AWS_ENDPOINT": self.endpoint},
            )  # fmt: skip
        wait_for_port(self.port, self.proc, log, "tansu")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


class FinsentProcess:
    """One `finsent ...` subprocess; every incarnation writes its own stdout/stderr files."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.args, self.env, self.log_dir = name, args, env, log_dir
        self.proc: subprocess.Popen | None = None
        self.runs: list[tuple[Path, Path]] = []  # (stdout, stderr) per start
        self.exit_codes: list[int | None] = []

    def start(self) -> None:
        n = len(self.runs) + 1
        out, err = self.log_dir / f"{self.name}-{n}.out", self.log_dir / f"{self.name}-{n}.err"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **self.env}
        with open(out, "wb") as o, open(err, "wb") as e:
            self.proc = subprocess.Popen([str(FINSENT), *self.args], stdout=o, stderr=e, env=env, cwd=REPO)
        self.runs.append((out, err))

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, whatever it is doing."""
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
        self.exit_codes.append(self.proc.wait() if self.proc else None)

    def stop(self, timeout_s: float = 30) -> int | None:
        """SIGTERM (finish the batch, leave the group), SIGKILL after `timeout_s`."""
        code = stop_process(self.proc, timeout_s)
        self.exit_codes.append(code)
        self.proc = None
        return code

    def stderr(self) -> str:
        return "".join(err.read_text(errors="replace") for _, err in self.runs)

    def stdout(self) -> str:
        return "".join(out.read_text(errors="replace") for out, _ in self.runs)


def worker_env(*, database_url: str, bootstrap: str, topic: str, group: str) -> dict[str, str]:
    """The FINSENT_* settings of a `finsent score` worker on this stack."""
    return {
        "FINSENT_TRANSPORT": "kafka",
        "FINSENT_DATABASE_URL": database_url,
        "FINSENT_KAFKA_BOOTSTRAP": bootstrap,
        "FINSENT_TOPIC_RAW": topic,
        "FINSENT_TOPIC_DLQ": topic + ".dlq",
        "FINSENT_TOPIC_PARTITIONS": "3",
        "FINSENT_CONSUMER_GROUP": group,
    }


# ------------------------------------------------------------------------------------------------- the data


def stream_messages(n: int, *, bad_every: int = 400, now: datetime | None = None) -> tuple[list[bytes], int]:
    """`n` news.raw messages: real headlines from the three news_stream files, interleaved, plus one malformed
    message every `bad_every`; returns (messages, how many are malformed).

    The good ones are unique for the exact-duplicate rules (a per-run source name and external id, no url, one
    item per (source, title key)), so every one of them must be stored and none is a legitimate duplicate. With
    `now`, published_at is set to it (alert windows are relative to the wall clock).
    """
    from ingest.sources.files import read_file
    from scoring.normalize import clean_text, title_key

    run = uuid.uuid4().hex[:6]
    readers = [(r for r in read_file(DATA / name) if r.value is not None) for name in FILES]
    seen: set[tuple[str, str]] = set()
    out: list[bytes] = []
    bad = 0
    for record in itertools.chain.from_iterable(zip(*readers, strict=False)):
        if len(out) == n:
            break
        if bad_every and (len(out) + 1) % bad_every == 0:
            out.append(b'{"source": "fault-bad", "external_id": "bad-%d", "title": ' % len(out))  # malformed JSON
            bad += 1
            continue
        data = json.loads(record.value)
        key = (data["source"], title_key(clean_text(data["title"])))
        if not key[1] or key in seen:
            continue
        seen.add(key)
        data["source"] = f"{data['source']}-{run}"
        data["external_id"] = f"{run}-{len(out)}"
        data["url"] = None
        if now is not None:
            data["published_at"] = now.isoformat()
        out.append(json.dumps(data).encode())
    return out, bad


class Producer(threading.Thread):
    """Publishes messages at `rate` per second in chunks, flushing each chunk; a chunk the broker did not
    acknowledge (it is down) is sent again on a new connection until it is, so every message is acked at least
    once (a re-sent message that had landed after all is a redelivery the worker must recognise)."""

    def __init__(self, bootstrap: str, topic: str, messages: list[bytes], *, rate: float, chunk: int = 25) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.messages, self.rate, self.chunk = bootstrap, topic, messages, rate, chunk
        self.acked = 0
        self.resent = 0
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        from core.transport import KafkaTransport, TransportError

        transport = KafkaTransport(self.bootstrap)
        start = time.monotonic()
        i = 0
        while i < len(self.messages) and not self.stop.is_set():
            batch = self.messages[i : i + self.chunk]
            try:
                for value in batch:
                    key = json.loads(value).get("external_id", "bad").encode() if value.endswith(b"}") else b"bad"
                    transport.publish(self.topic, key, value)
                transport.flush(timeout_s=5)
            except TransportError as exc:
                self.errors.append(str(exc).splitlines()[0][:200])
                self.resent += len(batch)
                try:
                    transport.close()
                except TransportError:
                    pass
                finally:
                    transport = KafkaTransport(self.bootstrap)
                self.stop.wait(0.5)
                continue
            i += len(batch)
            self.acked = i
            ahead = start + i / self.rate - time.monotonic()
            if ahead > 0:
                self.stop.wait(ahead)
        try:
            transport.close()
        except TransportError:
            pass


# ----------------------------------------------------------------------------------------------- the ledger


def ledger(database_url: str, messages: list[bytes], bad: int) -> dict:
    """Counts over what was sent and what the database holds.

    sent: messages acknowledged (good + malformed); stored: sent items with an article row; rejected: distinct
    rejected payloads; duplicates: unstored items whose (source, title key) matches a stored article (0 for these
    unique inputs); lost: the rest. Also: article rows beyond the sent items, articles without exactly one score.
    """
    import psycopg

    from scoring.normalize import clean_text, title_key

    good = [json.loads(m) for m in messages if m.endswith(b"}")]
    ids = [d["external_id"] for d in good]
    with psycopg.connect(database_url, autocommit=True) as conn:
        stored_ids = {
            row[0] for row in conn.execute("SELECT external_id FROM articles WHERE external_id = ANY(%s)", (ids,))
        }
        article_rows = conn.execute("SELECT count(*) FROM articles").fetchone()[0]
        not_one_score = conn.execute(
            "SELECT count(*) FROM (SELECT a.id FROM articles a LEFT JOIN scores s ON s.article_id = a.id"
            " GROUP BY a.id HAVING count(s.id) <> 1) x"
        ).fetchone()[0]
        score_rows = conn.execute("SELECT count(*) FROM scores").fetchone()[0]
        rejected = conn.execute("SELECT count(DISTINCT payload) FROM rejects").fetchone()[0]
        stored_keys = {
            (source, title_key(title))
            for source, title in conn.execute(
                "SELECT s.name, a.title FROM articles a JOIN sources s ON s.id = a.source_id"
            )
        }
    missing = [d for d in good if d["external_id"] not in stored_ids]
    duplicates = sum((d["source"], title_key(clean_text(d["title"]))) in stored_keys for d in missing)
    sent = len(messages)
    stored = len(stored_ids)
    return {
        "sent": sent,
        "stored": stored,
        "rejected": rejected,
        "duplicates": duplicates,
        "lost": sent - stored - rejected - duplicates,
        "malformed_sent": bad,
        "extra_article_rows": article_rows - stored,
        "score_rows": score_rows,
        "articles_without_exactly_one_score": not_one_score,
    }


def wait_until(predicate: Callable[[], bool], *, timeout_s: float, what: str, every_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(every_s)


def settle(database_url: str, messages: list[bytes], bad: int, *, timeout_s: float = 180) -> dict:
    """The ledger once every sent item is stored or rejected and nothing more arrived for 2 s (or the timeout)."""
    deadline = time.monotonic() + timeout_s
    last, stable_since = None, time.monotonic()
    while True:
        counts = ledger(database_url, messages, bad)
        key = (counts["stored"], counts["rejected"], counts["score_rows"])
        if key != last:
            last, stable_since = key, time.monotonic()
        done = counts["stored"] + counts["rejected"] + counts["duplicates"] >= counts["sent"]
        if (done and time.monotonic() - stable_since >= 2) or time.monotonic() > deadline:
            return counts
        time.sleep(0.5)


def stored_count(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM articles").fetchone()[0]


# -------------------------------------------------------------------------------------------- the artifacts

COLUMNS = ("sent", "stored", "rejected", "duplicates", "lost")


def report(fault: str, counts: dict, **details) -> None:
    """Print the count table row (pytest -s shows it) and merge it into tests/artifacts/faults.json."""
    header = f"{'fault':<34}" + "".join(f"{c:>11}" for c in COLUMNS)
    row = f"{fault:<34}" + "".join(f"{counts[c]:>11}" for c in COLUMNS)
    extras = ", ".join(f"{k}={v}" for k, v in details.items())
    print(f"\n{header}\n{row}\n  {extras}", flush=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "faults.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data[fault] = {**counts, **details, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    path.write_text(json.dumps(data, indent=2, sort_keys=True))


# ------------------------------------------------------------------------------------------------ a webhook


class WebhookReceiver:
    """An http.server on 127.0.0.1 that records the X-Finsent-Notification-Id of every POST it answers 2xx; it can
    go down (the port refuses connections) and come back on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.deliveries: list[str] = []
        self.bodies: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._server = None

    def start(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    delivery = self.headers.get("X-Finsent-Notification-Id", "?")
                    receiver.deliveries.append(delivery)
                    receiver.bodies[delivery] = body
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)  # allow_reuse_address: same port
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Down: the listening socket is closed, so connections are refused."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def delivered(self) -> list[str]:
        with self._lock:
            return list(self.deliveries)


def outbox(database_url: str) -> dict:
    """The notifications outbox (row ids, how many are marked sent, how many needed retries) and the
    fingerprints of the alerts that fired."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT id, sent_at IS NOT NULL, attempts FROM notifications ORDER BY id").fetchall()
        fired = {r[0] for r in conn.execute("SELECT fingerprint FROM alerts WHERE starts_at IS NOT NULL")}
    return {
        "ids": [str(r[0]) for r in rows],
        "sent": sum(1 for r in rows if r[1]),
        "retried": sum(1 for r in rows if r[2] > 1),
        "fired": fired,
    }
