"""A local MQTT broker (Mosquitto as a child process) for the demo, the benchmarks and the tests."""

from edge.broker.local import (
    BrokerError,
    BrokerTls,
    LocalBroker,
    MosquittoNotFound,
    find_mosquitto,
    find_mosquitto_passwd,
    hash_password,
)

__all__ = [
    "BrokerError",
    "BrokerTls",
    "LocalBroker",
    "MosquittoNotFound",
    "find_mosquitto",
    "find_mosquitto_passwd",
    "hash_password",
]
