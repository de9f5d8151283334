"""The worker's view of its broker: connected or not, and stalled or not, as metrics and logs.

An outage used to be invisible: every gauge kept its last value and the only sign was the
Kafka client's retry flood. :class:`BrokerHealth` is told, twice a second by the worker's
timer, whether the consumer holds a live connection and whether records wait for it, and
turns that into

- ``coldstream_broker_connected`` (1/0) and ``coldstream_broker_disconnects_total``;
- ``coldstream_fetch_stall_seconds``: seconds since the last record was fetched while records
  wait (a backlog, or the broker unreachable), 0 when everything was read;
- one log line per state change (lost, back after N s), a reminder every ``remind_s`` while
  it lasts, and a warning when the worker has not fetched for ``stall_warn_s`` although
  records wait. At each state change the Kafka clients' repeated messages are let through
  once more (:func:`core.logs.state_changed`); in between they are held back.

A state must hold for ``settle_s`` before it counts, so a connection being re-established
(closed for a moment between two fetches) is not an outage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from core.logs import state_changed
from exporters.metrics import WorkerMetrics

__all__ = ["BrokerHealth"]

log = logging.getLogger(__name__)


class BrokerHealth:
    def __init__(
        self,
        metrics: WorkerMetrics,
        bootstrap: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        settle_s: float = 1.0,
        remind_s: float = 60.0,
        stall_warn_s: float = 60.0,
    ) -> None:
        self.metrics, self.bootstrap, self.clock = metrics, bootstrap, clock
        self.settle_s, self.remind_s, self.stall_warn_s = settle_s, remind_s, stall_warn_s
        self.connected: bool | None = None  # None: not known yet
        now = clock()
        self.last_record = now
        self._seen: tuple[bool, float] | None = None  # an observed state and since when
        self._changed = now  # when the current state began
        self._reminded = now
        self._stall_warned = False
        metrics.broker_connected.set(0)
        metrics.fetch_stall.set(0)

    def fetched(self) -> None:
        """A record arrived from the broker."""
        self.last_record = self.clock()
        self._stall_warned = False

    def update(self, connected: bool | None, waiting: bool) -> None:
        """``connected``: the consumer holds a live broker connection (None: cannot tell);
        ``waiting``: some assigned partition has records the worker has not applied."""
        now = self.clock()
        if connected is not None:
            self._observe(connected, now)
        if self.connected is False and now - self._reminded >= self.remind_s:
            self._reminded = now
            log.warning(
                "the broker (%s) is still unreachable, for %.0f s now; retrying",
                self.bootstrap,
                now - self._changed,
            )
        stalled = waiting or self.connected is False
        stall = now - self.last_record if stalled else 0.0
        self.metrics.fetch_stall.set(stall)
        # warned only when connected for as long (a reconnect takes its time to fetch again)
        quiet = now - max(self.last_record, self._changed)
        if self.connected and waiting and quiet >= self.stall_warn_s and not self._stall_warned:
            self._stall_warned = True
            log.warning(
                "no record fetched for %.0f s although partitions have records waiting (see "
                "coldstream_consumer_lag); the broker is connected",
                stall,
            )

    def _observe(self, connected: bool, now: float) -> None:
        if connected == self.connected:
            self._seen = None
            return
        if self._seen is None or self._seen[0] != connected:
            self._seen = (connected, now)
        if now - self._seen[1] < self.settle_s:
            return
        before, down_for = self.connected, now - self._changed
        self.connected, self._changed, self._reminded, self._seen = connected, now, now, None
        self.metrics.broker_connected.set(1 if connected else 0)
        held = state_changed()
        if not connected:
            self.metrics.broker_disconnects.inc()
            log.warning(
                "%s the broker (%s); retrying, and the Kafka client's messages are logged "
                "once each until it is back",
                "cannot reach" if before is None else "lost the connection to",
                self.bootstrap,
            )
        elif before is False:
            log.warning(
                "the broker (%s) is reachable again after %.0f s (%d repeated Kafka client "
                "messages were held back)",
                self.bootstrap,
                down_for,
                held,
            )
        else:
            log.info("connected to the broker (%s)", self.bootstrap)
