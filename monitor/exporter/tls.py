"""TLS certificate expiry of the https targets: two metric families and the status API's rows.

Contract:

* ``TlsWatch.observe(target, info)`` keeps the last monitor.http.tlsinfo.TlsInfo
  seen for a target (the daemon feeds it after every models probe from
  ``GatewayClient.tls``: the connection that served ``/models``); None
  changes nothing, so a failed handshake keeps the certificate last served
  and an expiry in the past stays visible. ``retain`` drops targets that
  left the config or are no longer https.
* As a prometheus_client collector on the daemon's registry it yields, at
  every scrape, ``nexomon_tls_cert_expiry_timestamp_seconds{location,target}``
  (the leaf's notAfter, epoch seconds, as blackbox_exporter's
  ``probe_ssl_earliest_cert_expiry``; absent while the leaf could not be
  read) and ``nexomon_tls_version_info{location,target,version}`` = 1 (as
  blackbox_exporter's ``probe_tls_version_info``). Both families are
  always described, with no sample when no target is https. ``location``
  comes first among the labels, as in monitor.exporter.collectors.
* ``rows(now)`` is the ``tls`` list of ``/api/v1/status``: per target its
  version, notAfter (ISO 8601, UTC) and days left (two decimals, negative
  once expired), sorted by target.

Thread-safe: the daemon observes on the event loop; a scrape may collect
from a worker thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.exporter.metrics import LOCATION_LABEL
from monitor.http.tlsinfo import TlsInfo

EXPIRY = "nexomon_tls_cert_expiry_timestamp_seconds"
VERSION = "nexomon_tls_version_info"


class TlsWatch(Collector):
    """The last TLS facts per https target; see the module docstring."""

    def __init__(self, location: str) -> None:
        self._location = location
        self._seen: dict[str, TlsInfo] = {}
        self._lock = threading.Lock()

    def observe(self, target: str, info: TlsInfo | None) -> None:
        """Remember ``info`` as ``target``'s TLS facts; None keeps what was there."""
        if info is None:
            return
        with self._lock:
            self._seen[target] = info

    def retain(self, targets: Iterable[str]) -> None:
        """Forget every target not in ``targets``."""
        keep = set(targets)
        with self._lock:
            for target in [t for t in self._seen if t not in keep]:
                del self._seen[target]

    def _snapshot(self) -> list[tuple[str, TlsInfo]]:
        with self._lock:
            return sorted(self._seen.items())

    def _families(self, seen: list[tuple[str, TlsInfo]]) -> list[Metric]:
        expiry = GaugeMetricFamily(
            EXPIRY,
            "notAfter of the leaf certificate the target served on the connection of its "
            "last /models probe (epoch seconds).",
            labels=[LOCATION_LABEL, "target"],
        )
        version = GaugeMetricFamily(
            VERSION,
            "TLS version of the connection of the target's last /models probe (always 1).",
            labels=[LOCATION_LABEL, "target", "version"],
        )
        for target, info in seen:
            if info.not_after is not None:
                expiry.add_metric([self._location, target], info.not_after)
            if info.version is not None:
                version.add_metric([self._location, target, info.version], 1.0)
        return [expiry, version]

    def collect(self) -> Iterator[Metric]:
        yield from self._families(self._snapshot())

    def describe(self) -> Iterable[Metric]:
        return self._families([])

    def rows(self, now: datetime) -> list[dict[str, Any]]:
        """The status API's ``tls`` rows at ``now`` (see the module docstring)."""
        rows = []
        for target, info in self._snapshot():
            left = info.days_left(now.timestamp())
            not_after = None
            if info.not_after is not None:  # years 1-9999 (tlsinfo): always a datetime
                not_after = datetime.fromtimestamp(info.not_after, UTC).isoformat()
            rows.append(
                {
                    "target": target,
                    "version": info.version,
                    "cert_not_after": not_after,
                    "cert_days_left": None if left is None else round(left, 2),
                }
            )
        return rows
