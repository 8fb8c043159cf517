"""core.metrics: the /metrics endpoint, one set of metrics per registry. The stages'
own metrics are tested beside them (tests/scoring/test_metrics.py, tests/monitor/test_metrics.py)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter

from core.metrics import serve_metrics, shared
from tests.support.metrics import scrape, served_registry, value


class _Items:
    """A stage's metrics in miniature: one counter on the registry it is given."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.items = Counter("finsent_test_items_total", "Items.", registry=registry)


def test_one_set_of_metrics_per_registry():
    registry = CollectorRegistry()
    assert shared(_Items, registry) is shared(_Items, registry)
    with pytest.raises(ValueError, match="Duplicated"):
        _Items(registry)  # why `shared` exists: a registry refuses the same metric twice


def test_the_registry_is_served_over_http():
    with served_registry() as (registry, url):
        shared(_Items, registry).items.inc(3)
        assert value(scrape(url), "finsent_test_items_total") == 3


def test_the_endpoint_binds_loopback_by_default():
    registry = CollectorRegistry()
    server = serve_metrics(0, registry=registry)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.shutdown()
        server.server_close()


def test_health_and_readiness_are_their_own_paths():
    """/healthz says the process answers; /readyz runs the process's checks (503 naming the failing one); the
    metrics stay at /metrics and nothing else is served."""
    import json
    import urllib.error
    import urllib.request

    state = {"db": None}

    def broken() -> str:
        raise ConnectionError("connection refused\nat line 2")

    registry = CollectorRegistry()
    server = serve_metrics(0, registry=registry, checks={"database": lambda: state["db"], "broker": lambda: None})
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=5) as r:
            assert (r.status, r.read()) == (200, b"ok\n")
        with urllib.request.urlopen(base + "/readyz", timeout=5) as r:
            assert r.status == 200
            assert json.loads(r.read()) == {"ready": True, "checks": {"database": "ok", "broker": "ok"}}
        state["db"] = "no answer in 2 s"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "/readyz", timeout=5)
        assert err.value.code == 503
        assert json.loads(err.value.read())["checks"] == {"database": "no answer in 2 s", "broker": "ok"}
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "/other", timeout=5)
        assert err.value.code == 404
        shared(_Items, registry).items.inc()
        assert value(scrape(base + "/metrics"), "finsent_test_items_total") == 1
    finally:
        server.shutdown()
        server.server_close()
    from core.metrics import readiness

    assert readiness({"broker": broken}) == (False, {"broker": "ConnectionError: connection refused"})
