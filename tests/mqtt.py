"""Helpers for tests that talk MQTT to a real broker (``edge.broker.LocalBroker``).

- :func:`make_tls_material`: a CA, a server certificate for 127.0.0.1/localhost and a client
  certificate, written as PEM files.
- :func:`subscription` / :func:`collect`: subscribe with aiomqtt and wait for messages.
- :class:`Upstream`: the upstream side of the event contract, as a test sees it: a persistent
  MQTT 5 session on ``edge/v1/+/events`` that survives broker restarts, de-duplicates envelopes
  by id and keeps, per site, the seqs in the order they arrived.

Nothing here sleeps to wait for something: waits are on messages and conditions, with timeouts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiomqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

# ---------------------------------------------------------------------------- TLS material


@dataclass(frozen=True)
class TlsMaterial:
    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def client_context(self, *, with_cert: bool = True) -> ssl.SSLContext:
        """What a site uses: trust the CA; present the client certificate if ``with_cert``."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if with_cert:
            context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    return builder.sign(issuer_key, hashes.SHA256())


def make_tls_material(directory: Path) -> TlsMaterial:
    """A test CA, a server certificate (127.0.0.1, localhost) and a client certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue(
        "edge test CA",
        ca_key,
        None,
        ca_key,
        [
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                True,
            ),
        ],
    )
    leaf_usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _issue(
        "localhost",
        server_key,
        ca,
        ca_key,
        [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (leaf_usage, True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            (
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                    ]
                ),
                False,
            ),
        ],
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _issue(
        "edge-test-site",
        client_key,
        ca,
        ca_key,
        [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (leaf_usage, True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
        ],
    )
    material = TlsMaterial(
        ca_file=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )
    _write_cert(material.ca_file, ca)
    _write_key(directory / "ca.key", ca_key)
    _write_cert(material.server_cert, server)
    _write_key(material.server_key, server_key)
    _write_cert(material.client_cert, client)
    _write_key(material.client_key, client_key)
    return material


# ---------------------------------------------------------------------------- plain clients


def session_properties(expiry_s: int) -> Properties:
    """CONNECT properties of an MQTT 5 session the broker keeps ``expiry_s`` after a disconnect."""
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = expiry_s
    return properties


def persistent_client(
    host: str, port: int, client_id: str, *, expiry_s: int = 3600, **kwargs: Any
) -> aiomqtt.Client:
    """An MQTT 5 client whose session (subscriptions, queued QoS 1 messages) outlives it."""
    return aiomqtt.Client(
        host,
        port,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=session_properties(expiry_s),
        **kwargs,
    )


class Inbox:
    """Messages of one subscription, as they arrive."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.received: list[aiomqtt.Message] = []

    async def get(self, timeout: float = 5.0) -> aiomqtt.Message:
        async with asyncio.timeout(timeout):
            message = await anext(self.client.messages)
        self.received.append(message)
        return message

    async def collect(
        self,
        count: int | None = 1,
        until: Callable[[list[aiomqtt.Message]], bool] | None = None,
        timeout: float = 5.0,
    ) -> list[aiomqtt.Message]:
        """Messages until ``until(received)`` holds, else until ``count`` have arrived."""

        def done() -> bool:
            if until is not None:
                return until(self.received)
            return count is not None and len(self.received) >= count

        async with asyncio.timeout(timeout):
            while not done():
                await self.get(timeout)
        return self.received


@asynccontextmanager
async def subscription(
    topic: str, host: str, port: int, *, qos: int = 1, **client_kwargs: Any
) -> AsyncIterator[Inbox]:
    """A client subscribed to ``topic`` (the SUBACK received) for the duration of the block."""
    client_kwargs.setdefault("protocol", aiomqtt.ProtocolVersion.V5)
    async with aiomqtt.Client(host, port, **client_kwargs) as client:
        await client.subscribe(topic, qos=qos)
        yield Inbox(client)


async def collect(
    topic: str,
    host: str,
    port: int,
    *,
    count: int | None = 1,
    until: Callable[[list[aiomqtt.Message]], bool] | None = None,
    timeout: float = 5.0,
    ready: asyncio.Event | None = None,
    **client_kwargs: Any,
) -> list[aiomqtt.Message]:
    """Subscribe, set ``ready`` once subscribed, and return the messages (see Inbox.collect).

    For use as a task: ``task = create_task(collect(..., ready=ready)); await ready.wait()``,
    then publish.
    """
    async with subscription(topic, host, port, **client_kwargs) as inbox:
        if ready is not None:
            ready.set()
        return await inbox.collect(count, until, timeout)


# ---------------------------------------------------------------------------- upstream


@dataclass
class SiteLog:
    events: list[dict[str, Any]] = field(default_factory=list)
    """First copy of each envelope, in the order received."""
    seqs: list[int] = field(default_factory=list)
    """The seqs of ``events``, in the order received."""
    ids: set[str] = field(default_factory=set)
    seen_seqs: set[int] = field(default_factory=set)
    duplicates: int = 0
    """Envelopes received again (same id) after the first copy."""
    out_of_order: int = 0
    """New envelopes whose seq was lower than one received before."""
    highest: int = 0


class Upstream:
    """The upstream consumer of site events, for tests.

    A persistent MQTT 5 session (``clean_start`` off, a session expiry) subscribed to
    ``edge/v1/+/events`` at QoS 1. Each message must be a JSON array of envelopes
    ``{id, seq, type, ts, site, data}``; anything else is recorded in ``errors``. It reconnects
    by itself, with a short backoff, when the broker goes away, so a test can kill the broker
    under it. Use as an async context manager: entering waits for the first subscription.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        topic: str = "edge/v1/+/events",
        client_id: str = "upstream-test",
        session_expiry_s: int = 3600,
        tls_context: ssl.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
        backoff_initial_s: float = 0.02,
        backoff_max_s: float = 0.5,
    ) -> None:
        self.host = host
        self.port = port
        self.topic = topic
        self.client_id = client_id
        self.session_expiry_s = session_expiry_s
        self.tls_context = tls_context
        self.username = username
        self.password = password
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.sites: dict[str, SiteLog] = {}
        self.messages = 0
        """MQTT messages received (batches), duplicates included."""
        self.errors: list[str] = []
        """Messages that were not a JSON array of envelopes, and envelope/topic mismatches."""
        self.connections = 0
        """Successful connect + subscribe cycles."""
        self.last_error: BaseException | None = None
        self.subscribed = False
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ reading what arrived

    def site(self, site: str) -> SiteLog:
        return self.sites.setdefault(site, SiteLog())

    def events(self, site: str) -> list[dict[str, Any]]:
        return list(self.site(site).events)

    def seqs(self, site: str) -> list[int]:
        return list(self.site(site).seqs)

    def duplicates(self, site: str | None = None) -> int:
        logs = self.sites.values() if site is None else [self.site(site)]
        return sum(log.duplicates for log in logs)

    def gaps(self, site: str, start: int = 1) -> list[tuple[int, int]]:
        """Missing seqs from ``start`` up to the highest received, as inclusive ranges."""
        gaps: list[tuple[int, int]] = []
        expected = start
        for seq in sorted(s for s in self.site(site).seen_seqs if s >= start):
            if seq > expected:
                gaps.append((expected, seq - 1))
            expected = seq + 1
        return gaps

    def summary(self, site: str) -> str:
        log = self.site(site)
        return (
            f"site {site!r}: {len(log.events)} events, highest seq {log.highest}, "
            f"gaps {self.gaps(site)[:10]}, {log.duplicates} duplicates, "
            f"{log.out_of_order} out of order; {self.connections} connections, "
            f"errors {self.errors[:3]}, last error {self.last_error!r}"
        )

    # ------------------------------------------------------------ waiting

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Until ``predicate()`` holds; RuntimeError if the consumer itself has died."""

        def stopped() -> bool:
            return self._task is None or self._task.done()

        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(lambda: predicate() or stopped())
        if not predicate():
            raise RuntimeError(f"the upstream consumer is not running: {self.last_error!r}")

    async def wait_for_seq(self, site: str, seq: int, timeout: float = 5.0) -> None:
        """Until the envelope with this ``seq`` has arrived from ``site``."""
        try:
            await self.wait_for(lambda: seq in self.site(site).seen_seqs, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"seq {seq} not received within {timeout}s; {self.summary(site)}"
            ) from None

    async def wait_connected(self, connections: int | None = None, timeout: float = 5.0) -> None:
        """Until subscribed, and at least ``connections`` connect cycles have happened."""
        target = max(connections or 0, 1)
        try:
            await self.wait_for(lambda: self.subscribed and self.connections >= target, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"upstream not (re)connected within {timeout}s: {self.connections} connections, "
                f"last error {self.last_error!r}"
            ) from None

    # ------------------------------------------------------------ the consumer

    def _client(self) -> aiomqtt.Client:
        return persistent_client(
            self.host,
            self.port,
            self.client_id,
            expiry_s=self.session_expiry_s,
            tls_context=self.tls_context,
            username=self.username,
            password=self.password,
            timeout=5,
            keepalive=10,
        )

    async def _run(self) -> None:
        try:
            await self._consume()
        except Exception as exc:
            self.last_error = exc  # a bug here, not the broker: wait_for() reports it
            raise
        finally:
            self.subscribed = False
            await self._notify()

    async def _consume(self) -> None:
        delay = self.backoff_initial_s
        while True:
            try:
                async with self._client() as client:
                    await client.subscribe(self.topic, qos=1)
                    self.connections += 1
                    self.subscribed = True
                    delay = self.backoff_initial_s
                    await self._notify()
                    async for message in client.messages:
                        self._receive(message)
                        await self._notify()
            except aiomqtt.MqttError as exc:
                self.last_error = exc
            finally:
                self.subscribed = False
            await self._notify()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max_s)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _receive(self, message: aiomqtt.Message) -> None:
        self.messages += 1
        topic = message.topic.value
        try:
            payload = message.payload
            text = payload.decode() if isinstance(payload, bytes | bytearray) else str(payload)
            batch = json.loads(text)
        except (UnicodeDecodeError, ValueError) as exc:
            self.errors.append(f"{topic}: not JSON: {exc}")
            return
        if not isinstance(batch, list):
            self.errors.append(f"{topic}: not a JSON array: {type(batch).__name__}")
            return
        parts = topic.split("/")
        topic_site = parts[-2] if len(parts) >= 2 else None
        for envelope in batch:
            if not (
                isinstance(envelope, dict)
                and {"id", "seq", "type", "ts", "site", "data"} <= envelope.keys()
                and isinstance(envelope["seq"], int)
                and isinstance(envelope["id"], str)
                and isinstance(envelope["site"], str)
            ):
                self.errors.append(f"{topic}: not an envelope: {str(envelope)[:200]}")
                continue
            if envelope["site"] != topic_site:
                self.errors.append(f"{topic}: envelope of site {envelope['site']!r}")
            log = self.site(envelope["site"])
            if envelope["id"] in log.ids:
                log.duplicates += 1
                continue
            if envelope["seq"] < log.highest:
                log.out_of_order += 1
            log.highest = max(log.highest, envelope["seq"])
            log.ids.add(envelope["id"])
            log.seen_seqs.add(envelope["seq"])
            log.seqs.append(envelope["seq"])
            log.events.append(envelope)

    async def start(self, timeout: float = 5.0) -> None:
        self._task = asyncio.create_task(self._run(), name=f"upstream {self.client_id}")
        await self.wait_connected(timeout=timeout)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
