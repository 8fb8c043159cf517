"""Issue 17, D2: a webhook receiver that trickles its answer. `timeout_s` bounds a whole attempt, the other receivers
are not kept waiting, and SIGINT / SIGTERM end `finsent monitor` and `finsent run` within seconds, the cut-off
attempt retried later and nothing sent twice."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.db import make_engine, make_session_factory, upgrade
from monitor.notify import NOTIFICATION_ID_HEADER, DeliveryReport, Receiver, deliver_pending
from tests.monitor.test_notify import NOW, Recorder, add_notifications, row

REPO = Path(__file__).resolve().parents[2]
EVERY_S = 0.5  # the trickle: one byte this often, well inside any per-read timeout used below


class Trickler:
    """A webhook receiver on 127.0.0.1 that reads the request, then answers one byte every EVERY_S seconds: a whole
    204 in 19 s, or (`endless`) a status line and then a header that never ends."""

    def __init__(self, *, endless: bool = False) -> None:
        self.arrived = threading.Event()
        self.arrivals: list[float] = []  # time.monotonic() of each request
        self.closed = threading.Event()
        trickler = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                trickler.arrivals.append(time.monotonic())
                trickler.arrived.set()
                answer = b"HTTP/1.1 204 No Content\r\nX-Pad: " + (b"" if endless else b"...\r\n\r\n")
                sent = 0
                while endless or sent < len(answer):
                    if trickler.closed.wait(EVERY_S):
                        return
                    try:
                        self.wfile.write(answer[sent : sent + 1] or b".")
                    except OSError:  # the client gave up
                        return
                    sent += 1
                self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.closed.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def trickler():
    t = Trickler()
    yield t
    t.close()


@pytest.fixture
def sessions(migrated_engine):
    return make_session_factory(migrated_engine)


def test_timeout_s_bounds_the_whole_attempt_however_slowly_the_answer_comes(sessions, trickler):
    (nid,) = add_notifications(sessions, ["slow"])
    receivers = {"slow": Receiver(name="slow", kind="webhook", url=trickler.url, timeout_s=1)}

    started = time.monotonic()
    report = deliver_pending(session_factory=sessions, receivers=receivers, now=NOW)
    elapsed = time.monotonic() - started

    # Per-read timeouts never fire on a byte every 0.5 s (the 204 would come after 19 s); the attempt's deadline does.
    assert elapsed < 3 * 1, f"the attempt took {elapsed:.1f} s with timeout_s=1"
    assert report == DeliveryReport(failed=1)
    r = row(sessions, nid)
    assert (r.attempts, r.sent_at, r.next_attempt_at) == (1, None, NOW + timedelta(seconds=1))
    assert r.last_error.startswith("timeout after 1 s posting to http://127.0.0.1:")


def test_the_deadline_covers_a_name_lookup_that_hangs(sessions, monkeypatch):
    (nid,) = add_notifications(sessions, ["slow-dns"])

    def hanging_lookup(*args, **kwargs):
        time.sleep(3)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", hanging_lookup)
    url = "http://receiver.finsent.test/hook"
    receivers = {"slow-dns": Receiver(name="slow-dns", kind="webhook", url=url, timeout_s=0.5)}
    started = time.monotonic()
    report = deliver_pending(session_factory=sessions, receivers=receivers, now=NOW)
    assert time.monotonic() - started < 3 * 0.5  # the lookup's thread is left to finish on its own
    assert report == DeliveryReport(failed=1)
    assert row(sessions, nid).last_error.startswith("timeout after 0.5 s posting to http://receiver.finsent.test")


def test_a_slow_receiver_does_not_keep_the_others_waiting(sessions, trickler):
    fast = Recorder()
    try:
        # The slow receiver's row is the older one: it used to be tried first, and the fast one waited behind it.
        slow_id, fast_id = add_notifications(sessions, ["slow", "fast"])
        receivers = {
            "slow": Receiver(name="slow", kind="webhook", url=trickler.url, timeout_s=2),
            "fast": Receiver(name="fast", kind="webhook", url=f"http://127.0.0.1:{fast.port}/"),
        }
        started = time.monotonic()
        report = deliver_pending(session_factory=sessions, receivers=receivers, now=NOW)

        (request,) = fast.requests
        assert request["at"] - started < 2, "the fast receiver waited for the slow one's deadline"
        assert report == DeliveryReport(sent=1, failed=1)
        assert row(sessions, fast_id).sent_at == NOW
        assert "timeout after 2 s" in row(sessions, slow_id).last_error
    finally:
        fast.close()


def test_stop_cuts_an_attempt_short_and_the_row_is_retried_and_sent_once(sessions):
    hanging = Trickler(endless=True)
    back = Recorder()
    try:
        (nid,) = add_notifications(sessions, ["desk"])
        receivers = {"desk": Receiver(name="desk", kind="webhook", url=hanging.url, timeout_s=60)}
        stop = threading.Event()
        reports: list[DeliveryReport] = []
        worker = threading.Thread(
            target=lambda: reports.append(
                deliver_pending(session_factory=sessions, receivers=receivers, now=NOW, stop=stop)
            )
        )
        worker.start()
        assert hanging.arrived.wait(10)
        stopped = time.monotonic()
        stop.set()
        worker.join(10)
        assert not worker.is_alive() and time.monotonic() - stopped < 3
        assert reports == [DeliveryReport(failed=1)]
        r = row(sessions, nid)
        # A failed attempt like any other: counted, its reason kept, retried after the backoff.
        assert (r.attempts, r.sent_at, r.next_attempt_at) == (1, None, NOW + timedelta(seconds=1))
        assert r.last_error.startswith("shutdown cut the attempt short after ")

        # A stop set before the run starts: nothing is tried.
        assert deliver_pending(session_factory=sessions, receivers=receivers, now=NOW + timedelta(seconds=1),
                               stop=stop) == DeliveryReport()  # fmt: skip

        receivers = {"desk": Receiver(name="desk", kind="webhook", url=f"http://127.0.0.1:{back.port}/")}
        for later in (NOW + timedelta(seconds=1), NOW + timedelta(hours=1)):
            deliver_pending(session_factory=sessions, receivers=receivers, now=later)
        assert [q["headers"][NOTIFICATION_ID_HEADER] for q in back.requests] == [str(nid)]
        assert row(sessions, nid).sent_at == NOW + timedelta(seconds=1)
    finally:
        back.close()
        hanging.close()


# ------------------------------------------------------------------------------------ the commands, interrupted


@pytest.fixture
def outbox(tmp_path):
    """A SQLite database holding one due webhook notification for the receiver `slow`: (url, session factory, id)."""
    url = f"sqlite:///{tmp_path / 'd2.db'}"
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    (nid,) = add_notifications(factory, ["slow"])
    yield url, factory, nid
    engine.dispose()


def interrupt_while_delivering(args: list[str], sig: signal.Signals, tmp_path: Path) -> tuple[float, int, str, str]:
    """Start `finsent <args> CONFIG` with a monitor config whose only receiver hangs; once the request arrived send
    `sig`. Returns (seconds from the signal to the exit, exit code, stdout, stderr)."""
    hanging = Trickler(endless=True)
    config = tmp_path / "monitor.toml"
    config.write_text(f'[[receiver]]\nname = "slow"\nkind = "webhook"\nurl = "{hanging.url}"\ntimeout_s = 120\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")}
    proc = subprocess.Popen([sys.executable, "-m", "cli", *args, str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)  # fmt: skip
    try:
        assert hanging.arrived.wait(60), "the delivery never reached the receiver"
        sent = time.monotonic()
        proc.send_signal(sig)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 15 s after {sig.name} (a delivery held the exit)")
        return time.monotonic() - sent, proc.returncode, out, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        hanging.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_monitor_exits_within_seconds_when_stopped_during_a_hanging_delivery(outbox, tmp_path, sig):
    url, factory, nid = outbox
    args = ["monitor", "--database-url", url, "--deliver-every", "0.2", "--evaluate-every", "3600", "--config"]
    took, code, _, err = interrupt_while_delivering(args, sig, tmp_path)
    assert took < 10, f"exit {took:.1f} s after {sig.name}"
    assert code == 0 and "Traceback" not in err, err
    r = row(factory, nid)
    assert (r.attempts, r.sent_at) == (1, None) and r.last_error.startswith("shutdown cut the attempt short")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_exits_within_seconds_when_stopped_during_a_hanging_delivery(outbox, tmp_path, sig):
    url, factory, nid = outbox
    args = ["run", "--database-url", url, "--evaluate-every", "3600", "--monitor"]
    took, code, out, err = interrupt_while_delivering(args, sig, tmp_path)
    assert took < 10, f"exit {took:.1f} s after {sig.name}"
    assert code == 0 and "Traceback" not in err, err
    assert "alerts open: 0" in out  # the last look still evaluates, but delivers nothing: the row waits
    r = row(factory, nid)
    assert (r.attempts, r.sent_at) == (1, None) and r.last_error.startswith("shutdown cut the attempt short")
