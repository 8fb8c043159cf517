"""What every stage's metrics share: the Prometheus `/metrics` endpoint and one set of metrics per registry.
Each stage defines and records its own metrics (`scoring.metrics`, `monitor.metrics`).

Every metric is named `finsent_*` and lives on a registry passed in (the process-wide default unless a test gives
its own), so one process that runs several stages (`finsent run`) exports them all from one endpoint.
"""

from __future__ import annotations

import json
import socket
import threading
import weakref
from collections.abc import Callable, Mapping
from socketserver import ThreadingMixIn
from typing import Any, TypeVar
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app

M = TypeVar("M")
Check = Callable[[], str | None]  # None when all is well, else the problem in a few words


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
        """No access log: a scrape every 15 s would fill the process's log (and break a JSON one)."""


def readiness(checks: Mapping[str, Check]) -> tuple[bool, dict[str, str]]:
    """Run every check: (all passed, {name: "ok" or the problem}); a check that raises fails with its error."""
    out = {}
    for name, check in checks.items():
        try:
            problem = check()
        except Exception as exc:  # a readiness probe reports, it never takes the process down
            problem = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
        out[name] = problem or "ok"
    return all(v == "ok" for v in out.values()), out


def serve_metrics(
    port: int, host: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY, checks: Mapping[str, Check] = {}
) -> WSGIServer:
    """Serve in a daemon thread, at http://host:port (port 0: a free port); returns the server:

    - `/metrics`: `registry`, for Prometheus;
    - `/healthz`: 200 while the process answers (liveness);
    - `/readyz`: 200 when every check passes, else 503; a JSON body names each check's result (readiness: the
      database answers, the broker is connected, the last batch is recent; each process passes its own);
    - anything else: 404.
    """
    metrics = make_wsgi_app(registry)

    def app(environ: dict, start_response: Callable) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        if path == "/readyz":
            ready, results = readiness(checks)
            body = json.dumps({"ready": ready, "checks": results}).encode()
            start_response("200 OK" if ready else "503 Service Unavailable", [("Content-Type", "application/json")])
            return [body]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: /metrics, /healthz or /readyz\n"]

    server = make_server(host, port, app, _Server6 if ":" in host else _Server, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name=f"metrics:{port}", daemon=True).start()
    return server


_shared: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # registry -> {kind: instance}
_shared_lock = threading.Lock()


def shared(kind: type[M], registry: CollectorRegistry = REGISTRY, **kwargs: Any) -> M:
    """The one `kind` (WorkerMetrics, MonitorMetrics, FeedMetrics) of `registry`: a registry refuses a metric twice."""
    with _shared_lock:
        of_registry = _shared.setdefault(registry, {})
        if kind not in of_registry:
            of_registry[kind] = kind(registry=registry, **kwargs)
        return of_registry[kind]
