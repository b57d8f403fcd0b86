"""Probes of what is not a device: the MQTT broker, the face models, the database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sqlite3
import ssl
import threading
import uuid
from pathlib import Path

import aiomqtt
import onnxruntime as ort
from aiomqtt.exceptions import MqttConnectError
from alembic.script import ScriptDirectory
from paho.mqtt.reasoncodes import ReasonCode

from edge.config.models import EdgeConfig
from edge.config.sync import MqttConfig
from edge.db.migrate import alembic_config, head_revision
from edge.doctor.report import Finding, fail, ok, skipped
from edge.outbox.cursor import ACKED_COUNTER, SEQ_COUNTER
from edge.sync.client import make_client, tls_context
from models.errors import ModelError, ModelNotPrepared
from models.prepare import load_prepared
from models.runtime import open_session

MIN_FREE_BYTES = 256 * 1024 * 1024
"""Below this the database's disk is a failure: SQLite needs room for its WAL and checkpoints."""
QUICK_CHECK_S = 20.0

# MQTT CONNACK codes that mean "who you are is not accepted" (MQTT 5 reason codes, then 3.1.1).
_BAD_CREDENTIALS = {134, 4}
_NOT_AUTHORISED = {135, 5}
_CLIENT_ID_REJECTED = {133, 2}


async def probe_mqtt(config: MqttConfig, site: str) -> Finding:
    """Resolve, connect (TLS), MQTT CONNECT with the configured credentials, disconnect; each
    stage fails with its own next step."""
    port = config.effective_port
    target = f"{config.host}:{port}" + (" (TLS)" if config.tls else "")
    try:
        await asyncio.get_running_loop().getaddrinfo(config.host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return fail(
            "mqtt",
            target,
            f"cannot resolve {config.host}: {exc.strerror}",
            "check mqtt.host and the DNS settings (/etc/resolv.conf, resolvectl status)",
        )
    try:
        context = tls_context(config)
    except (ssl.SSLError, OSError) as exc:
        return fail(
            "mqtt",
            target,
            f"cannot load the TLS files: {exc}",
            "check mqtt.tls.ca_file, cert_file and key_file (PEM, readable, key matches cert)",
        )
    reached = await _reach(config, context, target)
    if reached is not None:
        return reached
    client = make_client(
        config,
        f"edge-doctor-{site}-{uuid.uuid4().hex[:8]}"[:64],  # never the controller's own session
        persistent=False,
        timeout_s=config.connect_timeout_s,
    )
    try:
        async with client:
            pass
    except MqttConnectError as exc:
        return _refused(exc, config, target)
    except aiomqtt.MqttError as exc:
        return fail(
            "mqtt",
            target,
            f"no MQTT session: {exc}",
            "the port answers but not as an MQTT broker"
            + ("" if config.tls else " (does it expect TLS? then set mqtt.tls)"),
        )
    user = f" as {config.username}" if config.username else ""
    return ok("mqtt", target, f"connected{user} (MQTT {config.protocol}) and disconnected")


async def _reach(config: MqttConfig, context: ssl.SSLContext | None, target: str) -> Finding | None:
    port = config.effective_port
    try:
        async with asyncio.timeout(config.connect_timeout_s):
            _reader, writer = await asyncio.open_connection(
                config.host, port, ssl=context, server_hostname=config.host if context else None
            )
    except ConnectionRefusedError:
        return fail(
            "mqtt",
            target,
            f"connection refused by {config.host}:{port}",
            f"check that the broker runs and listens on port {port} (mqtt.port), and the firewall",
        )
    except ssl.SSLCertVerificationError as exc:
        return fail(
            "mqtt",
            target,
            f"the broker's certificate is not trusted: {exc.verify_message}",
            "check mqtt.tls.ca_file (the CA that signed the broker's certificate) and that "
            "mqtt.host is the name in that certificate",
        )
    except ssl.SSLError as exc:
        return fail(
            "mqtt",
            target,
            f"TLS handshake failed: {exc.reason or exc}",
            "check that mqtt.port is the broker's TLS port (usually 8883), and mqtt.tls "
            "(client certificate and key, if the broker asks for one)",
        )
    except TimeoutError:
        return fail(
            "mqtt",
            target,
            f"no answer within {config.connect_timeout_s:g} s",
            f"check the network route and firewall to {config.host} port {port}",
        )
    except OSError as exc:
        return fail(
            "mqtt", target, f"cannot connect: {exc.strerror or exc}", "check the network link"
        )
    writer.close()
    return None


def _refused(exc: MqttConnectError, config: MqttConfig, target: str) -> Finding:
    code = exc.rc.value if isinstance(exc.rc, ReasonCode) else exc.rc
    if code in _BAD_CREDENTIALS:
        return fail(
            "mqtt",
            target,
            f"the broker refused the login: bad user name or password ({exc})",
            "check mqtt.username and mqtt.password against the broker's account for this site",
        )
    if code in _NOT_AUTHORISED and config.username is None and config.tls is None:
        return fail(
            "mqtt",
            target,
            f"the broker does not accept anonymous clients ({exc})",
            "set mqtt.username and mqtt.password (or a client certificate in mqtt.tls)",
        )
    if code in _NOT_AUTHORISED:
        # Mosquitto answers a wrong password with "not authorized" too.
        who = f"user {config.username}" if config.username else "this client certificate"
        return fail(
            "mqtt",
            target,
            f"the broker refused {who}: not authorised ({exc})",
            "check mqtt.username and mqtt.password (or the certificate in mqtt.tls) against "
            "the broker's account for this site, and the broker's ACL",
        )
    if code in _CLIENT_ID_REJECTED:
        return fail(
            "mqtt",
            target,
            f"the broker refused the client id ({exc})",
            "the broker restricts client ids: allow edge-doctor-* for this site's user",
        )
    return fail("mqtt", target, f"the broker refused the connection: {exc}", "read the broker log")


def mqtt_not_configured() -> Finding:
    return skipped("mqtt", "-", "no mqtt section: the site runs alone, events wait in the outbox")


def probe_models(config: EdgeConfig, config_path: Path) -> list[Finding]:
    """Each chosen face model: prepared in the cache, its hash as recorded, loads in onnxruntime.
    Blocking (hashing, loading): run it in a thread."""
    assert config.facepay is not None
    chosen = config.facepay.models
    cache_dir = config.resolve(chosen.cache_dir)
    names = [chosen.detector, chosen.recognizer, *([chosen.antispoof] if chosen.antispoof else [])]
    prepare = f"edge models prepare --config {config_path}"
    try:
        manifest = chosen.manifest()
    except ModelError as exc:
        return [fail("face model", str(cache_dir), str(exc), "reinstall this release")]
    findings = []
    for name in names:
        target = f"{name} ({cache_dir})"
        try:
            spec = manifest.get(name)
            prepared = load_prepared(cache_dir, name, source_sha256=spec.source.sha256)
            open_session(prepared.path, threads=1)
        except ModelNotPrepared as exc:
            findings.append(fail("face model", target, str(exc), f"run `{prepare}`"))
        except ModelError as exc:
            findings.append(fail("face model", target, str(exc), f"run `{prepare} --force`"))
        else:
            findings.append(
                ok(
                    "face model",
                    target,
                    f"prepared (sha256 {prepared.prepared_sha256[:12]}…), loads in onnxruntime "
                    f"{ort.__version__}",
                )
            )
    return findings


def probe_database(config: EdgeConfig, config_path: Path) -> list[Finding]:
    """File or folder, schema revision, integrity, outbox depth, free disk. Read-only: the file
    is opened with ``mode=ro`` and never migrated here. Blocking: run it in a thread."""
    path = config.database_path
    folder = _existing_folder(path.parent)
    findings = [_database_file(path, folder, config_path)]
    if path.exists() and findings[0].result == "ok":
        findings.append(_outbox(path, config))
    findings.append(_disk(folder))
    return findings


def _existing_folder(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _database_file(path: Path, folder: Path, config_path: Path) -> Finding:
    if not os.access(folder, os.W_OK):
        owner = "the service user (edge)"
        return fail(
            "database",
            str(path),
            f"the folder {folder} is not writable by this user (SQLite writes its journal there)",
            f"give the folder to {owner}: sudo chown -R edge: {folder}",
        )
    if not path.exists():
        return ok("database", str(path), "not created yet: `edge run` creates it at start")
    upgrade = f"edge db upgrade --config {config_path}"
    try:
        with _read_only(path) as connection:
            revision = _revision(connection)
            integrity = _quick_check(connection)
    except sqlite3.DatabaseError as exc:
        return fail(
            "database",
            str(path),
            f"cannot read the database: {exc}",
            "stop the controller, keep a copy of the file, and restore the last backup",
        )
    head = head_revision()
    if revision != head:
        known = {r.revision for r in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
        if revision is not None and revision not in known:
            return fail(
                "database",
                str(path),
                f"schema {revision} is newer than this release knows (head {head})",
                "install the release that wrote this database, or restore a backup",
            )
        return fail(
            "database",
            str(path),
            f"schema at {revision or 'nothing (empty file)'}, this release expects {head}",
            f"run `{upgrade}` (the controller also upgrades at start)",
        )
    if integrity is not None and integrity != "ok":
        return fail(
            "database",
            str(path),
            f"integrity check failed: {integrity}",
            "stop the controller, keep a copy of the file, and restore the last backup",
        )
    checked = "ok" if integrity else f"not finished within {QUICK_CHECK_S:g} s"
    return ok("database", str(path), f"schema {revision} (head), quick_check {checked}")


def _read_only(path: Path) -> contextlib.closing[sqlite3.Connection]:
    """A read-only connection, closed after use: never creates or migrates anything."""
    return contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5))


def _revision(connection: sqlite3.Connection) -> str | None:
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    return str(row[0]) if row else None


def _quick_check(connection: sqlite3.Connection) -> str | None:
    """``ok``, the first problems found, or None when it did not finish in time."""
    # A huge file may take long: interrupt it rather than hang the doctor.
    timer = threading.Timer(QUICK_CHECK_S, connection.interrupt)
    timer.start()
    try:
        rows = connection.execute("PRAGMA quick_check").fetchall()
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            return None  # not finished in time is not a failure; the schema read worked
        raise
    finally:
        timer.cancel()
    return "; ".join(str(row[0]) for row in rows[:3])


def _outbox(path: Path, config: EdgeConfig) -> Finding:
    with _read_only(path) as connection:
        counters = dict(
            connection.execute(
                "SELECT name, value FROM counter WHERE name IN (?, ?)", (ACKED_COUNTER, SEQ_COUNTER)
            ).fetchall()
        )
    pending = int(counters.get(SEQ_COUNTER, 0)) - int(counters.get(ACKED_COUNTER, 0))
    where = "waiting for the broker" if config.mqtt is not None else "kept (no mqtt configured)"
    return ok("outbox", str(path), f"{pending} event(s) {where}")


def _disk(folder: Path) -> Finding:
    usage = shutil.disk_usage(folder)
    free = f"{usage.free / 1024**3:.1f} GiB free of {usage.total / 1024**3:.1f} GiB"
    if usage.free < MIN_FREE_BYTES:
        return fail(
            "disk space",
            str(folder),
            f"only {usage.free // 1024**2} MiB free",
            f"free space on the disk holding {folder} "
            "(old logs: sudo journalctl --vacuum-size=100M)",
        )
    return ok("disk space", str(folder), free)
