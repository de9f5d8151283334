"""One log format for every coldstream process, and Kafka client noise cut to state changes.

Every command logs ``time level logger: message`` to stderr (:func:`setup_logging`). The Kafka
clients (aiokafka, kafka-python, Faust's transport) retry a lost broker several times a second
and log every attempt: an outage used to print ~80 lines a second. :class:`RepeatFilter` lets
each distinct message of those loggers through once (its first occurrence, with its arguments),
then holds back its repeats until the connection state changes, when the worker's health
monitor (:mod:`streams.health`) logs the change itself and calls :func:`state_changed`; the
count held back is logged with that change. A message held back for ``again_s`` (10 minutes)
passes once more, so a process without a health monitor (``serve``'s announcement listener)
still shows a later outage. coldstream's own loggers are never filtered.

>>> f = RepeatFilter(prefixes=("aiokafka",))
>>> rec = lambda name, msg: logging.LogRecord(name, logging.ERROR, "", 0, msg, (), None)
>>> [f.filter(rec("aiokafka.conn", "Unable to connect")) for _ in range(3)]
[True, False, False]
>>> f.filter(rec("coldstream", "Unable to connect")), f.reset()
(True, 2)
>>> f.filter(rec("aiokafka.conn", "Unable to connect"))
True
"""

from __future__ import annotations

import logging
import threading

__all__ = ["FORMAT", "KAFKA_LOGGERS", "RepeatFilter", "setup_logging", "state_changed"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: loggers whose repeats are held back between connection state changes
KAFKA_LOGGERS = ("aiokafka", "kafka", "faust.transport", "faust.tables", "mode")
_MAX_KEYS = 1024  # distinct messages remembered; past that everything passes again


class RepeatFilter(logging.Filter):
    """Passes the first record of each ``(logger, message template)`` of the given logger
    prefixes, and records of any other logger; holds back repeats until :meth:`reset`."""

    def __init__(self, prefixes: tuple[str, ...] = KAFKA_LOGGERS, again_s: float = 600.0) -> None:
        super().__init__()
        self.prefixes, self.again_s = prefixes, again_s
        self._seen: dict[tuple[str, str], float] = {}  # message -> when it last passed
        self._held = 0
        self._lock = threading.Lock()  # the Kafka clients log from their own threads too

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if not any(name == p or name.startswith(p + ".") for p in self.prefixes):
            return True
        key = (name, str(record.msg))
        with self._lock:
            last = self._seen.get(key)
            if last is not None and record.created - last < self.again_s:
                self._held += 1
                return False
            if len(self._seen) >= _MAX_KEYS:
                self._seen.clear()
            self._seen[key] = record.created
            return True

    def reset(self) -> int:
        """Forget what was seen (a state change); returns how many repeats were held back."""
        with self._lock:
            held, self._held = self._held, 0
            self._seen.clear()
            return held


_filter = RepeatFilter()


def setup_logging(level: int = logging.INFO) -> None:
    """Configure the root logger once per process: :data:`FORMAT` on stderr, the repeat filter
    on its handler (so it applies to records of every logger that propagates)."""
    root = logging.getLogger()
    if any(getattr(h, "_coldstream", False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_filter)
    handler._coldstream = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # third-party chatter below warnings says nothing an operator acts on
    for name in (
        *("aiokafka", "kafka", "faust", "mode", "urllib3", "httpx", "filelock"),
        *("onnxscript", "onnx_ir", "torch.onnx"),  # the snapshot export's optimiser passes
        *("sentence_transformers", "transformers", "huggingface_hub"),  # the teacher loading
    ):
        logging.getLogger(name).setLevel(logging.WARNING)


def state_changed() -> int:
    """A connection state changed: let each Kafka client message through once more. Returns
    the number of repeats held back since the last change."""
    return _filter.reset()
