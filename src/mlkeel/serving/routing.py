"""Which variant answers a request: the canary's share, sticky per routing key.

A request's routing key is the configured header (``X-Routing-Key``), else the value of the
configured feature in its first row, else its request id. The key hashes (BLAKE2b) to a point
in [0, 100); the canary answers the keys below its percent. The same key therefore always
lands on the same variant, on every replica, and raising the percent only moves keys from the
champion to the canary, never back.

Each canary carries a `FailureWindow`: the outcomes of its last requests on this process. When
its failures there exceed the error-rate limit it trips, and the server stops routing to it at
once; the scheduled analysis then rolls it back in the registry.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlkeel.settings import RolloutConfig

if TYPE_CHECKING:
    from mlkeel.serving.model_slot import ServedModel
    from mlkeel.serving.validation import Rows

_SCALE = 100 / 2**64


def bucket(key: str) -> float:
    """`key`'s stable point in [0, 100): the same on every process and Python version."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") * _SCALE


def routing_key(
    config: RolloutConfig,
    headers: Mapping[str, str],
    rows: Rows,
    names: list[str],
    request_id: str,
) -> str:
    """The header's value, else the routing feature's value in the first row, else the id."""
    value = headers.get(config.routing_header)
    if value:
        return value
    feature = config.routing_feature
    if feature is not None and rows.count and feature in names:
        return str(rows.raw[names.index(feature)][0])
    return request_id


class FailureWindow:
    """A canary's outcomes over its last `size` requests here; trips over `max_rate`.

    It trips as soon as the failures in the window exceed ``max_rate * size``: from then on
    the rate over the last `size` requests cannot fall back under the limit without further
    traffic, which it will not get. Updated on the event loop only, so it needs no lock.
    """

    def __init__(self, size: int, max_rate: float) -> None:
        self.size = size
        self.limit = max_rate * size
        self._outcomes: deque[bool] = deque()
        self.failures = 0
        self.requests = 0
        self.reason: str | None = None

    @property
    def tripped(self) -> bool:
        return self.reason is not None

    def trip(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def record(self, failed: bool) -> bool:
        """Count one outcome; True when this one trips the window."""
        if self.tripped:
            return False
        self.requests += 1
        self._outcomes.append(failed)
        self.failures += failed
        if len(self._outcomes) > self.size:
            self.failures -= self._outcomes.popleft()
        if self.failures > self.limit:
            self.trip(
                f"{self.failures} of its last {len(self._outcomes)} requests failed on this "
                f"server (limit {self.limit / self.size:.1%} of {self.size})"
            )
            return True
        return False


@dataclass(frozen=True, eq=False)
class Canary:
    """A canary version as one server routes to it."""

    served: ServedModel
    percent: float
    started: str  # the registry's start stamp: a restart of one version is a new canary
    guard: FailureWindow

    @property
    def version(self) -> int:
        return self.served.version

    def takes(self, key: str) -> bool:
        """Whether the request with routing key `key` goes to this canary."""
        return not self.guard.tripped and bucket(key) < self.percent
