"""Prometheus metrics: what an operator graphs and alerts on.

Counters move as things happen; gauges of state (compartments, outbox depth, devices, bus
health) are read fresh at each scrape, so they can never drift from the database.
"""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from sqlalchemy import ColumnElement, func
from sqlmodel import Session, col, select

from edge.clock import Clock, as_utc
from edge.commands.dispatcher import CommandDispatcher
from edge.db.tables import CabinetSession, Compartment
from edge.outbox.cursor import oldest_pending_ts
from edge.outbox.cursor import position as outbox_position
from edge.outbox.retention import OutboxKeeper
from edge.outbox.store import Envelope
from edge.scans.hub import ScanHub
from edge.sync.engine import SyncEngine

if TYPE_CHECKING:
    from edge.facepay.service import FacePayService
    from edge.labels.service import LabelService


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
        self.rfid_tag_reads = Gauge(
            "edge_rfid_tag_reads", "Tag replies received since start", ["reader"], registry=r
        )
        self.rfid_rounds = Gauge(
            "edge_rfid_rounds", "Inventory passes over all antennas", ["reader"], registry=r
        )
        self.rfid_corrupt = Gauge(
            "edge_rfid_corrupt_frames", "Reader frames skipped as corrupt", ["reader"], registry=r
        )
        self.rfid_timeouts = Gauge(
            "edge_rfid_timeouts", "Reader commands that got no reply", ["reader"], registry=r
        )
        self.cabinet_items = Gauge(
            "edge_cabinet_items",
            "Tagged items a cabinet holds (settled stock)",
            ["cabinet"],
            registry=r,
        )
        self.cabinet_ready = Gauge(
            "edge_cabinet_ready",
            "1 when a shopper could open the cabinet now",
            ["cabinet"],
            registry=r,
        )
        self.cabinet_held = Gauge(
            "edge_cabinet_session_held",
            "1 while a session waits for an operator",
            ["cabinet"],
            registry=r,
        )
        self.cabinet_counting = Gauge(
            "edge_cabinet_settle_rounds_seconds",
            "Time the last settled session spent counting after the door closed",
            registry=r,
        )

        self.scans = Gauge(
            "edge_scans",
            "Codes scanned at kiosks since start, by device and symbology",
            ["device", "symbology"],
            registry=r,
        )
        self.label_pushes = Gauge(
            "edge_label_pushes",
            "Shelf label pushes of bound labels by state (queued, uploaded, confirmed, failed)",
            ["state"],
            registry=r,
        )
        self.label_uploads = Gauge(
            "edge_label_uploads",
            "Label images an access point accepted since start",
            ["access_point"],
            registry=r,
        )
        self.label_upload_errors = Gauge(
            "edge_label_upload_errors",
            "Label uploads an access point refused or did not answer since start",
            ["access_point"],
            registry=r,
        )
        self.label_render_ms = Gauge(
            "edge_label_render_milliseconds",
            "Median time to render one label image, over the last hundred",
            registry=r,
        )
        self.scan_outcomes = Gauge(
            "edge_scan_outcomes",
            "Scans by the kiosk flow that took them and what it made of them",
            ["flow", "status"],
            registry=r,
        )
        self.facepay_members = Gauge(
            "edge_facepay_members", "Members in the face gallery", registry=r
        )
        self.facepay_checks = Gauge(
            "edge_facepay_checks",
            "Finished face checks since start, by outcome (verified or the failure reason)",
            ["outcome"],
            registry=r,
        )
        self.facepay_payments = Gauge(
            "edge_facepay_payments",
            "Face payments decided since start",
            ["decision", "mode"],
            registry=r,
        )
        self.facepay_offline = Gauge(
            "edge_facepay_offline",
            "1 while face payments are decided under the offline limits",
            registry=r,
        )
        self.facepay_frame_ms = Gauge(
            "edge_facepay_frame_milliseconds",
            "Median recognition time per frame in the last face check",
            registry=r,
        )

        self.sync_connected = Gauge(
            "edge_sync_connected", "1 while connected to the upstream broker", registry=r
        )
        self.sync_connects = Gauge(
            "edge_sync_connects", "Connections to the broker since start", registry=r
        )
        self.sync_failures = Gauge(
            "edge_sync_connection_failures",
            "Failed or lost broker connections since start",
            registry=r,
        )
        self.sync_published = Gauge(
            "edge_sync_published_events",
            "Events acknowledged by the broker since start",
            registry=r,
        )
        self.outbox_acked_seq = Gauge(
            "edge_outbox_acked_seq", "Highest seq the broker acknowledged", registry=r
        )
        self.outbox_last_seq = Gauge("edge_outbox_last_seq", "Highest seq written", registry=r)
        self.outbox_backlog_bytes = Gauge(
            "edge_outbox_backlog_bytes", "Estimated disk size of undelivered events", registry=r
        )
        self.outbox_cap_bytes = Gauge(
            "edge_outbox_cap_bytes", "Disk cap for undelivered events", registry=r
        )
        self.outbox_backlog_alarm = Gauge(
            "edge_outbox_backlog_alarm", "1 while the backlog is above its alarm level", registry=r
        )
        self.outbox_truncated = Gauge(
            "edge_outbox_truncated_events",
            "Undelivered events dropped at the cap since start (drop_oldest)",
            registry=r,
        )
        self.build = Info("edge_build", "Release and site of this controller", registry=r)
        self.ready = Gauge(
            "edge_ready", "1 once the doors were checked at start and the site serves", registry=r
        )
        self.outbox_oldest_age = Gauge(
            "edge_outbox_oldest_pending_age_seconds",
            "Age of the oldest event not yet delivered upstream (0 when none waits)",
            registry=r,
        )
        self.sync_down = Gauge(
            "edge_sync_down_seconds",
            "How long the upstream link has been down (0 while connected)",
            registry=r,
        )
        self.temperature_alarm = Gauge(
            "edge_temperature_alarm",
            "1 while the zone is outside its band past the grace period",
            ["sensor", "zone"],
            registry=r,
        )
        self.doors_open = Gauge(
            "edge_compartment_doors_open", "Compartment doors seen open now", registry=r
        )
        self.compartments_disabled = Gauge(
            "edge_compartments_disabled", "Compartments an operator disabled", registry=r
        )
        self.sessions_held = Gauge(
            "edge_cabinet_sessions_held",
            "Cabinet sessions held for an operator's review",
            registry=r,
        )
        self.screens = Gauge(
            "edge_screens_watching",
            "Kiosk and console screens on the live event stream",
            registry=r,
        )
        self.http_requests = Counter(
            "edge_http_requests",
            "Local API requests by route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "edge_http_request_seconds",
            "Local API request time (streams excluded)",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.commands = Gauge(
            "edge_commands",
            "Downlink commands since start, by outcome and error code",
            ["status", "code"],
            registry=r,
        )

    def read_sync(self, sync: SyncEngine | None, keeper: OutboxKeeper) -> None:
        backlog = keeper.backlog
        self.outbox_backlog_bytes.set(backlog.bytes)
        self.outbox_cap_bytes.set(keeper.cap_bytes)
        self.outbox_backlog_alarm.set(1 if backlog.alarmed else 0)
        self.outbox_truncated.set(backlog.truncated_events)
        if sync is None:
            return
        self.sync_connected.set(1 if sync.state.connected else 0)
        self.sync_connects.set(sync.state.connects)
        self.sync_failures.set(sync.state.failures)
        stats = sync.uplink.stats
        self.sync_published.set(stats.events)
        self.outbox_acked_seq.set(stats.acked_seq)
        self.outbox_last_seq.set(stats.last_seq)

    def read_facepay(self, facepay: FacePayService | None) -> None:
        if facepay is None:
            return
        self.facepay_members.set(len(facepay.gallery))
        for outcome, count in facepay.outcomes.items():
            self.facepay_checks.labels(outcome).set(count)
        for key, count in facepay.payments.decided.items():
            decision, _, mode = key.partition(":")
            self.facepay_payments.labels(decision, mode).set(count)
        self.facepay_offline.set(1 if facepay.payments.upstream_unreachable() else 0)
        if facepay.last_frame_ms:
            self.facepay_frame_ms.set(statistics.median(facepay.last_frame_ms))

    def read_labels(self, labels: LabelService | None, counts: dict[str, int]) -> None:
        if labels is None:
            return
        for state, count in counts.items():
            self.label_pushes.labels(state).set(count)
        times: list[float] = []
        for name, deliverer in labels.deliverers.items():
            self.label_uploads.labels(name).set(deliverer.uploads)
            self.label_upload_errors.labels(name).set(deliverer.upload_errors)
            times += deliverer.render_ms
        if times:
            self.label_render_ms.set(statistics.median(times))

    def read_scans(self, scans: ScanHub) -> None:
        for (device, symbology), count in scans.counts.items():
            self.scans.labels(device, symbology).set(count)
        for (flow, status), count in scans.outcome_counts.items():
            self.scan_outcomes.labels(flow, status).set(count)

    def read_commands(self, dispatcher: CommandDispatcher) -> None:
        self.commands.labels("ok", "").set(dispatcher.accepted)
        for code, count in dispatcher.rejected.items():
            self.commands.labels("rejected", code).set(count)
        for code, count in dispatcher.failed.items():
            self.commands.labels("failed", code).set(count)

    def count_events(self, envelopes: list[Envelope]) -> None:
        for envelope in envelopes:
            self.events.labels(envelope.type).inc()

    def read_database(self, session: Session, clock: Clock) -> None:
        self.compartments.clear()
        for state, count in session.exec(
            select(Compartment.state, func.count()).group_by(Compartment.state)
        ).all():
            self.compartments.labels(state).set(count)
        self.doors_open.set(_count(session, col(Compartment.door_open).is_(True)))
        self.compartments_disabled.set(_count(session, col(Compartment.enabled).is_(False)))
        self.sessions_held.set(
            session.exec(
                select(func.count())
                .select_from(CabinetSession)
                .where(CabinetSession.state == "held")
            ).one()
        )
        position = outbox_position(session)
        self.outbox_pending.set(position.pending)
        oldest = oldest_pending_ts(session, position.acked)
        age = (
            (clock.now() - as_utc(datetime.fromisoformat(oldest))).total_seconds()
            if oldest is not None
            else 0.0
        )
        self.outbox_oldest_age.set(max(0.0, age))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_seconds.labels(route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _count(session: Session, condition: ColumnElement[bool]) -> int:
    return int(session.exec(select(func.count()).select_from(Compartment).where(condition)).one())
