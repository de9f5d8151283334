"""Kafka side of coldstream: event records, datasets, the embedded broker, topics and loading."""

from core.records import (
    FieldMap,
    Interaction,
    Invalid,
    Item,
    Limits,
    Record,
    User,
    dead_letter,
    to_json,
)
from streams.broker import EmbeddedBroker
from streams.datasets import BadRow, Dataset, open_dataset
from streams.exceptions import BrokerError, DatasetError, StreamsError
from streams.validation import parse, parse_obj

__all__ = [
    "BadRow",
    "BrokerError",
    "Dataset",
    "DatasetError",
    "EmbeddedBroker",
    "FieldMap",
    "Interaction",
    "Invalid",
    "Item",
    "Limits",
    "Record",
    "StreamsError",
    "User",
    "dead_letter",
    "open_dataset",
    "parse",
    "parse_obj",
    "to_json",
]
