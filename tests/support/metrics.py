"""Reading a real /metrics endpoint in tests: serve a fresh registry, scrape it with prometheus_client's parser."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from core.metrics import serve_metrics


def scrape(url: str, **headers: str) -> dict[tuple[str, frozenset], float]:
    """GET a /metrics URL and parse it with prometheus_client's own parser: {(sample name, labels): value}."""
    response = httpx.get(url, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@contextmanager
def served_registry() -> Iterator[tuple[CollectorRegistry, str]]:
    """A fresh registry served on a free 127.0.0.1 port: (registry, url)."""
    registry = CollectorRegistry()
    server = serve_metrics(0, "127.0.0.1", registry)
    try:
        yield registry, f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        server.server_close()
