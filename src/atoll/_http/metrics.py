"""Prometheus text metrics kept in plain ints (a dict increment per request).

No client library: the replica and router hot paths pay one ``perf_counter``
pair, a dict increment and a bisect, and the text is built only when
``GET /metrics`` is scraped.
"""

from __future__ import annotations

from bisect import bisect_left

#: Latency histogram bucket bounds, in seconds.
BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Metrics:
    """Request counters by route and status, error counters, a latency histogram and an up gauge.

    Args:
        prefix: metric name prefix (``atoll`` for replicas, ``atoll_router`` for the router).
        timed_routes: routes whose latency is recorded (the others are only counted).
    """

    def __init__(self, prefix: str, timed_routes: tuple[str, ...]) -> None:
        self.prefix = prefix
        self.up = 0
        self.requests: dict[tuple[str, int], int] = {}
        self.errors: dict[str, int] = {}
        self._hist = {route: [0] * (len(BUCKETS) + 1) for route in timed_routes}
        self._sum = dict.fromkeys(timed_routes, 0.0)

    def count(self, route: str, status: int) -> None:
        """Count one answered request."""
        key = (route, status)
        self.requests[key] = self.requests.get(key, 0) + 1

    def observe(self, route: str, status: int, seconds: float) -> None:
        """Count one answered request of a timed route and record its latency."""
        key = (route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        self._hist[route][bisect_left(BUCKETS, seconds)] += 1
        self._sum[route] += seconds

    def error(self, kind: str) -> None:
        """Count one error of ``kind`` (e.g. ``invalid_input``, ``exception``)."""
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def render(self, gauges: dict[str, tuple[str, float]] | None = None) -> bytes:
        """The Prometheus text exposition (format 0.0.4).

        Args:
            gauges: extra gauges, name (without prefix) -> (help, value).
        """
        p = self.prefix
        lines = [
            f"# HELP {p}_up 1 while the server is ready to answer.",
            f"# TYPE {p}_up gauge",
            f"{p}_up {self.up}",
            f"# HELP {p}_requests_total Requests answered, by route and status.",
            f"# TYPE {p}_requests_total counter",
        ]
        for (route, status), n in sorted(self.requests.items()):
            lines.append(f'{p}_requests_total{{route="{route}",status="{status}"}} {n}')
        lines += [
            f"# HELP {p}_errors_total Requests that failed, by kind.",
            f"# TYPE {p}_errors_total counter",
        ]
        for kind, n in sorted(self.errors.items()):
            lines.append(f'{p}_errors_total{{kind="{kind}"}} {n}')
        lines += [
            f"# HELP {p}_request_duration_seconds Time to answer, by route.",
            f"# TYPE {p}_request_duration_seconds histogram",
        ]
        for route, counts in self._hist.items():
            cumulative = 0
            for bound, n in zip(BUCKETS, counts):
                cumulative += n
                lines.append(
                    f'{p}_request_duration_seconds_bucket{{route="{route}",le="{bound}"}} {cumulative}'
                )
            cumulative += counts[-1]
            lines.append(f'{p}_request_duration_seconds_bucket{{route="{route}",le="+Inf"}} {cumulative}')
            lines.append(f'{p}_request_duration_seconds_sum{{route="{route}"}} {self._sum[route]:.6f}')
            lines.append(f'{p}_request_duration_seconds_count{{route="{route}"}} {cumulative}')
        for name, (help_text, value) in sorted((gauges or {}).items()):
            lines += [f"# HELP {p}_{name} {help_text}", f"# TYPE {p}_{name} gauge", f"{p}_{name} {value:g}"]
        return ("\n".join(lines) + "\n").encode()


class SizeHistogram:
    """A histogram of small counts (batch sizes), rendered on its own.

    Args:
        name: metric name without prefix (``batch_size``).
        help_text: the ``# HELP`` line.
        bounds: bucket upper bounds.
    """

    def __init__(
        self,
        name: str,
        help_text: str,
        bounds: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
    ) -> None:
        self.name = name
        self.help_text = help_text
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0

    def observe(self, size: int) -> None:
        """Record one observation."""
        self.counts[bisect_left(self.bounds, size)] += 1
        self.total += size

    def render(self, prefix: str) -> bytes:
        """The histogram in Prometheus text format."""
        n = f"{prefix}_{self.name}"
        lines = [f"# HELP {n} {self.help_text}", f"# TYPE {n} histogram"]
        cumulative = 0
        for bound, count in zip(self.bounds, self.counts):
            cumulative += count
            lines.append(f'{n}_bucket{{le="{bound}"}} {cumulative}')
        cumulative += self.counts[-1]
        lines += [f'{n}_bucket{{le="+Inf"}} {cumulative}', f"{n}_sum {self.total}", f"{n}_count {cumulative}"]
        return ("\n".join(lines) + "\n").encode()


#: Content type of the Prometheus text format.
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

__all__ = ["BUCKETS", "CONTENT_TYPE", "Metrics", "SizeHistogram"]
