"""Every request of the hostile feed corpus (`feed_requests.py`) over a raw socket to the real feed server, on a
migrated SQLite file with a bearer token and a 1-second request deadline: the documented status, a one-line JSON
error with the expected message (naming the parameter for a bad query value), in time for the slow ones, and no
traceback in the server's log."""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
import time

import pytest

from core.db import make_engine, make_session_factory, upgrade
from monitor.feed import make_server

from .feed_requests import CLASSES, DEADLINE_S, TOKEN, FeedRequest

CASES = [pytest.param(case, id=f"{kind}: {case.name}") for kind, cases in CLASSES.items() for case in cases]


@pytest.fixture(scope="module")
def feed_port(tmp_path_factory):
    """The port of a feed server (token set, 1 s deadline) on a migrated SQLite file, shared by the corpus."""
    url = f"sqlite:///{tmp_path_factory.mktemp('feed') / 'feed.db'}"
    upgrade(url)
    engine = make_engine(url)
    server = make_server(
        session_factory=make_session_factory(engine), port=0, token=TOKEN, request_timeout_s=DEADLINE_S
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    engine.dispose()


def exchange(port: int, case: FeedRequest) -> tuple[bytes, float]:
    """Send the case's chunks (stopping early if the server answers or closes), then read until the server closes.

    Returns the bytes received and the seconds from connecting to the end of the response.
    """
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for i, chunk in enumerate(case.chunks):
            try:
                sock.sendall(chunk)
            except OSError:  # the server has answered and closed while we were still sending
                break
            if i < len(case.chunks) - 1 and select.select([sock], [], [], case.pause_s)[0]:
                break  # an answer (or a close) before we finished: read it
        received = b""
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:  # a close with our bytes unread resets, after the response arrived
                break
            if not data:
                break
            received += data
    return received, time.monotonic() - started


@pytest.mark.parametrize("case", CASES)
def test_hostile_feed_request(feed_port, case, caplog):
    caplog.set_level(logging.DEBUG, logger="monitor.feed")
    received, seconds = exchange(feed_port, case)

    head, _, body = received.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    assert status_line.startswith("HTTP/1."), f"no HTTP response: {received[:200]!r}"
    assert int(status_line.split()[1]) == case.status, f"{status_line}: {body[:300]!r}"
    assert b"Traceback" not in received
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in head.split(b"\r\n")[1:])}
    if case.status >= 400:
        assert headers[b"content-type"] == b"application/json", headers
        assert b"\n" not in body
        error = json.loads(body)
        assert case.message in error["error"], error
        if case.parameter is not None:
            assert error["parameter"] == case.parameter and repr(case.parameter) in error["error"], error
        assert TOKEN not in error["error"]
    if case.status == 408:  # cut off at the whole-request deadline, however slowly the bytes kept coming
        assert seconds < DEADLINE_S + 1.5, f"answered after {seconds:.1f} s"

    assert not [r for r in caplog.records if r.exc_info], "the server logged a traceback"
    assert "Traceback" not in caplog.text
    assert TOKEN not in caplog.text
