"""Request rate, error rate and latency of a deployment, from its replicas' ``GET /metrics``.

Replicas expose Prometheus text (:mod:`atoll._http.metrics`, prefix
``atoll``): ``atoll_requests_total{route,status}``, ``atoll_errors_total``
and the histogram ``atoll_request_duration_seconds`` of ``/predict``. Rates
need two scrapes, so :class:`MetricsScraper` keeps each replica's previous
sample and reports the change per second since then (the first scrape shows
the totals since the replica started).
"""

from __future__ import annotations

import math
import re
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

PREFIX = "atoll"
PREDICT = "/predict"
SCRAPE_TIMEOUT = 2.0
_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class Sample:
    """What one scrape of one replica says about ``/predict``."""

    at: float
    requests: float = 0.0
    errors: float = 0.0  # answers with status >= 400
    seconds: float = 0.0  # histogram sum
    buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count


def parse_prometheus(text: str) -> list[tuple[str, dict[str, str], float]]:
    """``(name, labels, value)`` for every sample line of a Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        try:
            number = float(value)
        except ValueError:
            continue
        out.append((name, dict(_LABEL.findall(labels or "")), number))
    return out


def sample_of(text: str, at: float) -> Sample:
    """The ``/predict`` figures of one scrape."""
    sample = Sample(at)
    for name, labels, value in parse_prometheus(text):
        if labels.get("route") != PREDICT:
            continue
        if name == f"{PREFIX}_requests_total":
            sample.requests += value
            if int(labels.get("status", "0") or 0) >= 400:
                sample.errors += value
        elif name == f"{PREFIX}_request_duration_seconds_sum":
            sample.seconds = value
        elif name == f"{PREFIX}_request_duration_seconds_bucket":
            sample.buckets[math.inf if labels.get("le") == "+Inf" else float(labels.get("le", "inf"))] = value
    return sample


def _quantile(buckets: dict[float, float], q: float) -> float | None:
    """Upper bound of the bucket holding quantile ``q`` (seconds), as Prometheus would bound it."""
    total = buckets.get(math.inf, 0.0)
    if total <= 0:
        return None
    for bound in sorted(buckets):
        if buckets[bound] >= q * total:
            return None if math.isinf(bound) else bound
    return None


def summarize(current: Sample, previous: Sample | None) -> dict[str, Any]:
    """Rates and latency over the interval since ``previous`` (since start when there is none,
    and latency since start when the interval saw no request)."""
    base = previous if previous is not None and current.requests >= previous.requests else Sample(0.0)
    elapsed = current.at - base.at if previous is not None else None
    requests = current.requests - base.requests
    rate = requests / elapsed if elapsed else None
    error_rate = (current.errors - base.errors) / elapsed if elapsed else None
    if requests <= 0:  # a quiet interval: latency since the replica started rather than none
        base, requests = Sample(0.0), current.requests
    buckets = {le: n - base.buckets.get(le, 0.0) for le, n in current.buckets.items()}
    p50, p99 = _quantile(buckets, 0.5), _quantile(buckets, 0.99)
    return {
        "requests_total": current.requests,
        "errors_total": current.errors,
        "request_rate": rate,
        "error_rate": error_rate,
        "latency_mean_ms": (current.seconds - base.seconds) / requests * 1000 if requests > 0 else None,
        "latency_p50_ms": p50 * 1000 if p50 is not None else None,
        "latency_p99_ms": p99 * 1000 if p99 is not None else None,
        "interval_s": elapsed,
    }


class MetricsScraper:
    """Scrapes replicas and remembers the previous sample of each (by URL)."""

    def __init__(self) -> None:
        self._previous: dict[str, Sample] = {}
        self._lock = threading.Lock()

    def scrape(self, url: str) -> dict[str, Any]:
        """Figures of the replica at ``url`` (``error`` set when it did not answer)."""
        try:
            with urllib.request.urlopen(f"{url}/metrics", timeout=SCRAPE_TIMEOUT) as answer:
                text = answer.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as exc:
            return {"error": f"/metrics did not answer: {getattr(exc, 'reason', exc)}"}
        current = sample_of(text, time.monotonic())
        with self._lock:
            previous = self._previous.get(url)
            self._previous[url] = current
        return summarize(current, previous)

    def deployment(self, replicas: list[dict[str, Any]]) -> dict[str, Any]:
        """Per-replica figures plus the deployment's totals (rates summed, latency of the busiest)."""
        per_replica = {r["name"]: self.scrape(r["url"]) for r in replicas if r.get("url")}
        answered = [m for m in per_replica.values() if "error" not in m]

        def total(key: str) -> float | None:
            values = [m[key] for m in answered if m.get(key) is not None]
            return sum(values) if values else None

        weighted = [(m["latency_mean_ms"], m["requests_total"]) for m in answered if m.get("latency_mean_ms")]
        return {
            "replicas": per_replica,
            "request_rate": total("request_rate"),
            "error_rate": total("error_rate"),
            "requests_total": total("requests_total"),
            "errors_total": total("errors_total"),
            "latency_mean_ms": max(weighted, key=lambda p: p[1])[0] if weighted else None,
            "latency_p99_ms": max((m["latency_p99_ms"] for m in answered if m.get("latency_p99_ms")), default=None),
        }
