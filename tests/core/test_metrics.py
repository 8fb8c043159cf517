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
