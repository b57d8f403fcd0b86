"""Prometheus metrics: what an operator graphs and alerts on.

Counters move as things happen; gauges of state (compartments, outbox depth, devices, bus
health) are read fresh at each scrape, so they can never drift from the database.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from sqlalchemy import func
from sqlmodel import Session, select

from edge.db.tables import Compartment
from edge.outbox.cursor import position as outbox_position
from edge.outbox.store import Envelope


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "edge_events_total", "Events committed to the outbox", ["type"], registry=r
        )
        self.code_failures = Counter(
            "edge_code_failures_total", "Wrong codes typed at kiosks", ["kind"], registry=r
        )
        self.compartments = Gauge(
            "edge_compartments", "Compartments by state", ["state"], registry=r
        )
        self.outbox_pending = Gauge(
            "edge_outbox_pending", "Events not yet delivered upstream", registry=r
        )
        self.device_up = Gauge(
            "edge_device_up", "1 when the device answers", ["device", "kind"], registry=r
        )
        self.temperature = Gauge(
            "edge_temperature_celsius", "Last temperature reading", ["sensor", "zone"], registry=r
        )
        self.bus_requests = Gauge(
            "edge_lockbus_requests", "Requests sent on a lock bus", ["bus"], registry=r
        )
        self.bus_timeouts = Gauge(
            "edge_lockbus_timeouts", "Requests that got no valid reply", ["bus"], registry=r
        )
        self.bus_corrupt = Gauge(
            "edge_lockbus_corrupt_frames", "Corrupt frames skipped", ["bus"], registry=r
        )

    def count_events(self, envelopes: list[Envelope]) -> None:
        for envelope in envelopes:
            self.events.labels(envelope.type).inc()

    def read_database(self, session: Session) -> None:
        self.compartments.clear()
        for state, count in session.exec(
            select(Compartment.state, func.count()).group_by(Compartment.state)
        ).all():
            self.compartments.labels(state).set(count)
        self.outbox_pending.set(outbox_position(session).pending)

    def render(self) -> bytes:
        return generate_latest(self.registry)
