"""docs/asyncapi.yaml: a valid AsyncAPI 3.0.0 document, and in step with the code it describes.

The document is checked against the official AsyncAPI 3.0.0 JSON Schema (npm package
``@asyncapi/specs``) and by the official parser (``@asyncapi/parser``), both installed by
``scripts/validate-asyncapi`` into ``.cache/asyncapi``. The rest holds the document to the code:
envelopes the real outbox produces validate against its ``events`` payload, the event types are
those of docs/events.md, the channel addresses are the topics the code builds.
"""

from __future__ import annotations

import ast
import base64
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jsonschema import Draft7Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from edge.app import EdgeApp
from edge.cabinet.service import SessionKind
from edge.clock import ManualClock
from edge.config.models import SiteConfig, Zone
from edge.config.sync import MqttConfig, TrustedKey
from edge.db import Database, upgrade_to_head
from edge.demo.site import COURIER_ID, SimulatedSite
from edge.facepay.members import MemberRegistry
from edge.labels.commands import register_label_commands
from edge.labels.rendering.model import TEMPLATES
from edge.lockers.states import CompartmentState, OperationKind
from edge.outbox.cursor import read_batches
from edge.sync.topics import Topics

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "edge"
DOCUMENT = ROOT / "docs" / "asyncapi.yaml"
EVENTS_MD = ROOT / "docs" / "events.md"
VALIDATE = ROOT / "scripts" / "validate-asyncapi"
OFFICIAL_SCHEMA = ROOT / ".cache/asyncapi/node_modules/@asyncapi/specs/schemas/3.0.0.json"
DOCUMENT_URI = "urn:edge-controller:asyncapi"
SITE = "contract-site"
# Registered only at a site with a `facepay` section (see test_asyncapi_facepay).
FACEPAY_COMMANDS = {"member.enroll", "member.remove"}
# Registered only at a site with a `labels` section (see test_asyncapi_labels).
LABEL_COMMANDS = {"label.bind", "label.refresh"}

# The demonstration key named in the `command` message's description.
EXAMPLE_PUBLIC_KEY = "qYAVV+z0MOXH+iyxBI2lBL/1KWnl9/Wc5H564t07EyA="


def node_and_npm() -> bool:
    return shutil.which("node") is not None and shutil.which("npm") is not None


def install_npm_packages() -> None:
    """Install @asyncapi/specs and @asyncapi/parser into .cache/asyncapi unless already there."""
    if not node_and_npm():
        pytest.skip(
            "node and npm are not installed: the official AsyncAPI schema and parser "
            "(npm @asyncapi/specs, @asyncapi/parser) cannot be fetched"
        )
    subprocess.run(["bash", str(VALIDATE), "--install"], check=True, timeout=300)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    # Pure JSON data: a YAML date or other non-JSON value would fail here.
    parsed: dict[str, Any] = json.loads(json.dumps(loaded))
    return parsed


def validator_for(document: dict[str, Any], pointer: str) -> Draft7Validator:
    """A validator for the schema at ``pointer`` in the document, its $refs resolved in it."""
    resource = Resource.from_contents(document, default_specification=DRAFT7)
    registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, resource)
    return Draft7Validator(
        {"$ref": f"{DOCUMENT_URI}#{pointer}"},
        registry=registry,
        format_checker=Draft7Validator.FORMAT_CHECKER,
    )


def problems(validator: Draft7Validator, instance: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
        for error in validator.iter_errors(instance)
    ]


@pytest.fixture(scope="module")
def events_payload(document: dict[str, Any]) -> Draft7Validator:
    return validator_for(document, "/components/messages/events/payload")


@pytest.fixture(scope="module")
def command_payload(document: dict[str, Any]) -> Draft7Validator:
    return validator_for(document, "/components/messages/command/payload")


SCHEMAS = "#/components/schemas/"


def examples(document: dict[str, Any], message: str) -> dict[str, Any]:
    """A message's examples by name: their payloads."""
    return {
        e["name"]: e["payload"] for e in document["components"]["messages"][message]["examples"]
    }


def documented_key(document: dict[str, Any], key_id: str) -> str:
    """The public key the ``command`` message says signed its examples with ``key_id``."""
    description = document["components"]["messages"]["command"]["description"]
    found = re.search(rf"`{key_id}`, public key\s+`([A-Za-z0-9+/=]{{44}})`", description)
    assert found is not None, f"no public key for {key_id} in the command message"
    return found.group(1)


def schema_named(document: dict[str, Any], ref: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"][ref.removeprefix(SCHEMAS)]
    return schema


def data_schema(document: dict[str, Any], envelope: str, type_: str) -> dict[str, Any]:
    """The data schema the ``EventEnvelope`` or ``CommandEnvelope`` rules give ``type_``."""
    for rule in document["components"]["schemas"][envelope]["allOf"]:
        condition = rule["if"]["properties"]["type"]
        if type_ in condition.get("enum", [condition.get("const")]):
            return schema_named(document, rule["then"]["properties"]["data"]["$ref"])
    raise AssertionError(f"{envelope} has no data schema for {type_}")


def undocumented(
    document: dict[str, Any], schema: dict[str, Any], data: dict[str, Any]
) -> set[str]:
    """Keys of ``data``, and of the objects in it, that the schema does not name (the schemas
    allow more, as changes are additive; what the site sends today should be documented)."""
    documented = _properties(document, schema)
    extra = set(data) - set(documented)
    for name, value in data.items():
        if not isinstance(value, dict) or name not in documented:
            continue
        nested = _object_schema(document, documented[name])
        if _properties(document, nested):  # not a free-form object
            extra |= {f"{name}.{key}" for key in undocumented(document, nested, value)}
    return extra


def _properties(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A schema's properties, with those of the schemas it takes in through ``allOf``."""
    found: dict[str, Any] = {}
    for part in schema.get("allOf", []):
        if "$ref" in part:
            found |= _properties(document, schema_named(document, part["$ref"]))
    own: dict[str, Any] = schema.get("properties", {})
    return found | own


def _object_schema(document: dict[str, Any], field: dict[str, Any]) -> dict[str, Any]:
    """A property's own schema: itself, or the schema its ``$ref`` (or a oneOf's) names."""
    for part in [field, *field.get("oneOf", []), *field.get("allOf", [])]:
        if "$ref" in part:
            return schema_named(document, part["$ref"])
    return field


# ------------------------------------------------------------------- the document itself


def test_document_is_valid_against_the_official_asyncapi_3_0_0_schema(
    document: dict[str, Any],
) -> None:
    if not OFFICIAL_SCHEMA.exists():
        install_npm_packages()
    schema = json.loads(OFFICIAL_SCHEMA.read_text(encoding="utf-8"))
    assert schema["$schema"].startswith("http://json-schema.org/draft-07/schema")
    assert document["asyncapi"] == "3.0.0"
    # Every definition carries its own $id; crawling registers them all for $ref resolution.
    registry = (Resource.from_contents(schema, default_specification=DRAFT7) @ Registry()).crawl()
    validator = Draft7Validator(schema, registry=registry)
    errors = list(validator.iter_errors(document))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in [best_match(errors), *errors]
        if e is not None
    )


def test_official_parser_accepts_the_document() -> None:
    """Semantics beyond the schema: every $ref resolves, operations use their channel's messages."""
    if not node_and_npm():
        pytest.skip("node and npm are not installed: cannot run the official @asyncapi/parser")
    run = subprocess.run(
        ["bash", str(VALIDATE), str(DOCUMENT)], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "valid AsyncAPI 3.0.0" in run.stdout


def test_every_example_matches_its_payload_schema(document: dict[str, Any]) -> None:
    # The official parser does not check examples; this does.
    checked = 0
    for name, message in document["components"]["messages"].items():
        validator = validator_for(document, f"/components/messages/{name}/payload")
        for example in message.get("examples", []):
            assert not problems(validator, example["payload"]), (name, example.get("name"))
            checked += 1
    assert checked >= 8


def test_example_command_is_signed_over_the_documented_canonical_json(
    document: dict[str, Any],
) -> None:
    message = document["components"]["messages"]["command"]
    assert EXAMPLE_PUBLIC_KEY in message["description"]
    envelope = dict(message["examples"][0]["payload"])
    signature = base64.b64decode(envelope.pop("sig"), validate=True)
    assert len(signature) == 64
    canonical = json.dumps(
        envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(EXAMPLE_PUBLIC_KEY))
    key.verify(signature, canonical)  # raises InvalidSignature


# ------------------------------------------------- envelopes produced by the real code


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "edge.db", SITE, ManualClock(datetime(2026, 11, 21, tzinfo=UTC)))
    upgrade_to_head(database.engine)
    yield database
    database.close()


async def test_outbox_batches_validate_against_the_events_payload(
    db: Database, events_payload: Draft7Validator
) -> None:
    command_id = "5b0f6f0e-2a4c-4f57-9d0e-6c1f3f4a8b21"
    emitted: list[tuple[str, dict[str, Any]]] = [
        ("door.closed", {"compartment": "A01", "operation": "op-1"}),
        (
            "parcel.deposited",
            {
                "parcel_id": "p-1",
                "parcel_code": "PKG-1",
                "compartment": "A01",
                "size": "S",
                "zone": "ambient",
                "courier_id": "courier-1",
                "recipient": None,
                "deposited_at": "2026-11-21T00:00:00.000Z",
                "expires_at": "2026-11-24T00:00:00.000Z",
            },
        ),
        ("device.offline", {"device": "chiller", "kind": "temperature_sensor", "reason": "x"}),
        (
            "command.result",
            {
                "command_id": command_id,
                "status": "rejected",
                "type": "compartment.disable",
                "error": {"code": "expired", "message": "The command expired."},
            },
        ),
        (
            "command.result",
            {
                "command_id": None,
                "status": "rejected",
                "error": {"code": "malformed", "message": "Not JSON."},
            },
        ),
        ("command.result", {"command_id": command_id, "status": "ok", "result": {}}),
        ("outbox.truncated", {"first_seq": 1, "last_seq": 9, "count": 9, "reason": "disk_cap"}),
        ("outbox.backlog_high", {"pending": 10, "bytes": 2048, "cap_bytes": 4096}),
        ("outbox.backlog_ok", {"pending": 0, "bytes": 0, "cap_bytes": 4096}),
        ("some.future_type", {"anything": [1, 2, 3]}),
    ]

    def emit_all(tx: Any) -> None:
        for type_, data in emitted:
            tx.emit(type_, data)

    await db.transact(emit_all)
    # Small batches, so that several messages are built, as the publisher would.
    batches = await db.read(
        lambda s: read_batches(s, SITE, 0, max_events=4, max_bytes=256 * 1024, max_batches=10)
    )
    assert [b.count for b in batches] == [4, 4, 2]
    seqs: list[int] = []
    for batch in batches:
        payload = json.loads(batch.payload)
        assert not problems(events_payload, payload)
        seqs += [envelope["seq"] for envelope in payload]
        assert all(envelope["site"] == SITE for envelope in payload)
    assert seqs == list(range(1, len(emitted) + 1))


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda e: e.pop("id"), "'id' is a required property"),
        (lambda e: e.update(id="not-a-uuid"), "does not match"),
        (lambda e: e.update(seq=0), "less than the minimum"),
        (lambda e: e.update(ts="2026-11-21T09:15:02.123+01:00"), "does not match"),
        (lambda e: e.update(type="Parcel Deposited"), "does not match"),
        (lambda e: e.update(extra=1), "Additional properties"),
        (lambda e: e["data"].pop("parcel_code"), "'parcel_code' is a required property"),
        (lambda e: e["data"].update(zone="tropical"), "is not one of"),
    ],
)
def test_the_events_schema_is_not_vacuous(
    document: dict[str, Any], events_payload: Draft7Validator, change: Any, complaint: str
) -> None:
    example = document["components"]["messages"]["events"]["examples"][0]["payload"]
    assert not problems(events_payload, example)
    broken = json.loads(json.dumps(example))
    change(broken[1])
    found = problems(events_payload, broken)
    assert any(complaint in p for p in found), found


def test_a_batch_holds_1_to_500_envelopes(
    document: dict[str, Any], events_payload: Draft7Validator
) -> None:
    envelope = document["components"]["messages"]["events"]["examples"][0]["payload"][0]
    assert problems(events_payload, [])
    assert problems(events_payload, [envelope] * 501)
    assert not problems(events_payload, [envelope] * 500)


def test_command_result_of_a_rejection_names_its_error(events_payload: Draft7Validator) -> None:
    envelope = {
        "id": "9d8e7f6a-5b4c-4d3e-8f2a-1b0c9d8e7f6a",
        "seq": 1,
        "type": "command.result",
        "ts": "2026-11-21T09:00:01.456Z",
        "site": SITE,
        "data": {"command_id": None, "status": "rejected"},
    }
    assert any("'error' is a required property" in p for p in problems(events_payload, [envelope]))


async def test_events_of_a_real_locker_cycle_validate(
    app: EdgeApp, site: SimulatedSite, clock: ManualClock, events_payload: Draft7Validator
) -> None:
    """Boot check, devices, a deposit, a pickup, an expiry, disable and enable: as committed."""
    for code in ("PKG-1", "PKG-2"):
        door = await app.lockers.start_deposit(COURIER_ID, code, "S")
        site.close_door(door.compartment_id)
        deposit = await app.lockers.wait_operation(door.operation_id, wait_s=5)
        assert deposit.pickup_code is not None
        if code == "PKG-1":
            pickup = await app.lockers.start_pickup("kiosk-1", deposit.pickup_code)
            site.close_door(pickup.compartment_id)
            await app.lockers.wait_operation(pickup.operation_id, wait_s=5)
    clock.advance(30 * 24 * 3600)
    assert await app.lockers.expire_due() == 1
    free = next(c["id"] for c in site.compartments if c["id"] != door.compartment_id)
    await app.lockers.set_enabled(free, False, "operator")
    await app.lockers.set_enabled(free, True, "operator")

    batches = await app.db.read(
        lambda s: read_batches(
            s, app.config.site.id, 0, max_events=500, max_bytes=256 * 1024, max_batches=100
        )
    )
    envelopes = [envelope for batch in batches for envelope in json.loads(batch.payload)]
    for batch in batches:
        assert not problems(events_payload, json.loads(batch.payload))
    types = {envelope["type"] for envelope in envelopes}
    assert {
        "locker.boot_check",
        "door.commanded",
        "door.opened",
        "door.closed",
        "parcel.deposited",
        "parcel.picked_up",
        "parcel.expired",
        "compartment.disabled",
        "compartment.enabled",
    } <= types


# ------------------------------------------------------------------ the document vs the code


def event_types_in_events_md() -> set[str]:
    types: set[str] = set()
    for line in EVENTS_MD.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            types |= set(re.findall(r"`([a-z_]+\.[a-z_]+)`", first_cell))
    return types


def test_event_types_are_those_of_docs_events_md(document: dict[str, Any]) -> None:
    documented = set(document["components"]["schemas"]["EventType"]["enum"])
    in_events_md = event_types_in_events_md()
    assert len(in_events_md) >= 20
    assert in_events_md - documented == set(), "in docs/events.md, not in docs/asyncapi.yaml"
    assert documented - in_events_md == set(), "in docs/asyncapi.yaml only"


def test_every_event_type_has_a_data_schema(document: dict[str, Any]) -> None:
    documented = set(document["components"]["schemas"]["EventType"]["enum"])
    with_data: set[str] = set()
    for rule in document["components"]["schemas"]["EventEnvelope"]["allOf"]:
        condition = rule["if"]["properties"]["type"]
        with_data |= set(condition.get("enum", [condition.get("const")]))
        ref = rule["then"]["properties"]["data"]["$ref"]
        assert ref.removeprefix("#/components/schemas/") in document["components"]["schemas"]
    assert with_data == documented


def test_channel_addresses_are_the_topics_the_code_builds(document: dict[str, Any]) -> None:
    prefix = MqttConfig.model_fields["topic_prefix"].default
    topics = Topics(prefix=prefix, site="{site}")
    addresses = {name: channel["address"] for name, channel in document["channels"].items()}
    assert addresses == {
        "status": topics.status,
        "events": topics.events,
        "telemetry": topics.telemetry,
        "state": topics.state("{thing}"),
        "commands": topics.commands,
    }
    will = document["servers"]["production"]["bindings"]["mqtt"]["lastWill"]
    assert will["topic"] == topics.status
    assert json.loads(will["message"])["state"] == "offline"


def test_limits_and_enumerations_match_the_code(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    mqtt = MqttConfig.model_json_schema()["properties"]
    assert schemas["EventBatch"]["maxItems"] == mqtt["batch_max_events"]["maximum"]
    assert "256 KiB" in schemas["EventBatch"]["description"]
    assert mqtt["batch_max_bytes"]["maximum"] == 256 * 1024
    binding = document["servers"]["production"]["bindings"]["mqtt"]
    assert binding["sessionExpiryInterval"] == mqtt["session_expiry_s"]["default"]
    assert binding["keepAlive"] == mqtt["keepalive_s"]["default"]
    assert (
        schemas["SiteId"]["pattern"]
        == SiteConfig.model_json_schema()["properties"]["id"]["pattern"]
    )
    kid = schemas["CommandEnvelope"]["properties"]["kid"]["pattern"]
    assert kid == TrustedKey.model_json_schema()["properties"]["id"]["pattern"]
    assert schemas["Zone"]["enum"] == [zone.value for zone in Zone]
    assert schemas["CompartmentState"]["enum"] == [state.value for state in CompartmentState]
    assert schemas["OperationKind"]["enum"] == [kind.value for kind in OperationKind]
    assert schemas["CabinetSessionKind"]["enum"] == [kind.value for kind in SessionKind]
    assert schemas["LabelTemplate"]["enum"] == list(TEMPLATES)
    assert set(schemas["DeviceKind"]["enum"]) == device_kinds_registered_in_the_code()
    code_doc = schemas["CommandErrorCode"]["description"]
    missing = {code for code in command_error_codes_in_the_code() if f"`{code}`" not in code_doc}
    assert not missing, f"command error codes not in CommandErrorCode: {sorted(missing)}"


def _calls(name: str) -> Iterator[ast.Call]:
    """Every call of a function or method called ``name`` in the controller's sources."""
    for path in sorted(SOURCES.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called == name:
                    yield node


def command_error_codes_in_the_code() -> set[str]:
    """The dispatcher's own codes and every literal code a handler fails with."""
    from edge.commands import errors

    codes = {v for k, v in vars(errors).items() if k.isupper() and isinstance(v, str)}
    for call in _calls("CommandFailed"):
        first = call.args[0] if call.args else None
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            codes.add(first.value)
    assert {"price_version_conflict", "unknown_product", "nothing_to_replay"} <= codes
    return codes


def device_kinds_registered_in_the_code() -> set[str]:
    """The ``kind`` of every ``health.register(name, kind)`` (device.* events, telemetry)."""
    kinds: set[str] = set()
    for call in _calls("register"):
        func = call.func
        receiver = func.value if isinstance(func, ast.Attribute) else None
        owner = (
            receiver.attr if isinstance(receiver, ast.Attribute) else getattr(receiver, "id", "")
        )
        if owner == "health" and len(call.args) == 2 and isinstance(call.args[1], ast.Constant):
            kinds.add(str(call.args[1].value))
    assert "rfid_reader" in kinds
    return kinds


# ------------------------------------------------------------- commands, verified for real


def test_example_command_passes_the_real_verifier(document: dict[str, Any]) -> None:
    verify = pytest.importorskip("edge.commands.verify", reason="command verification not built")
    from edge.config.sync import CommandsConfig

    config = CommandsConfig.model_validate(
        {"trusted_keys": [{"id": "upstream-2026", "public_key": EXAMPLE_PUBLIC_KEY}]}
    )
    example = document["components"]["messages"]["command"]["examples"][0]["payload"]
    clock = ManualClock(datetime(2026, 11, 21, 9, 30, tzinfo=UTC))
    command = verify.CommandVerifier(config, clock).verify(json.dumps(example).encode())
    assert (command.id, command.type, command.key_id) == (
        example["id"],
        "compartment.disable",
        "upstream-2026",
    )


async def test_commands_and_their_answers_match_the_document(
    app: EdgeApp,
    clock: ManualClock,
    document: dict[str, Any],
    events_payload: Draft7Validator,
) -> None:
    """Real envelopes validate as `command`; every `command.result` the site commits as events."""
    dispatcher_module = pytest.importorskip("edge.commands.dispatcher", reason="not built")
    envelope_module = pytest.importorskip("edge.commands.envelope", reason="not built")
    keys = pytest.importorskip("edge.commands.keys", reason="not built")
    locker_commands = pytest.importorskip("edge.lockers.commands", reason="not built")
    from edge.catalog.commands import register_catalog_commands
    from edge.commands.verify import CommandVerifier
    from edge.config.sync import CommandsConfig
    from edge.sync.replay import register_sync_commands

    key = keys.private_key_from_seed(b"\x05" * 32)
    config = CommandsConfig.model_validate(
        {"trusted_keys": [{"id": "upstream-1", "public_key": keys.public_key_b64(key)}]}
    )
    dispatcher = dispatcher_module.CommandDispatcher(CommandVerifier(config, clock), app.db, clock)
    locker_commands.register_locker_commands(dispatcher, app.lockers)
    register_catalog_commands(dispatcher, clock)
    publisher = _Publisher()
    register_sync_commands(dispatcher, app.db, publisher)  # type: ignore[arg-type]
    documented = set(document["components"]["schemas"]["CommandType"]["enum"])
    assert set(dispatcher.types) | FACEPAY_COMMANDS | LABEL_COMMANDS == documented

    milk, since = "06901234567892", "2026-01-01T00:00:00+08:00"
    command_payload = validator_for(document, "/components/messages/command/payload")
    sent: list[dict[str, Any]] = [
        envelope_module.sign_command(
            key, type_, data, ttl_s=300, kid="upstream-1", issued_at=clock.now()
        )
        for type_, data in [
            ("compartment.disable", {"compartment_id": "A01", "reason": "broken hinge"}),
            ("compartment.enable", {"compartment_id": "A01", "reason": "fixed"}),
            ("courier.upsert", {"id": "courier-9", "name": "Nine", "credential": "1357"}),
            ("courier.revoke", {"id": "courier-9"}),
            ("parcel.expect", {"parcel_code": "PKG-77", "size": "S", "zone": "chilled"}),
            (
                "catalog.upsert",
                {
                    "products": [
                        {"gtin": "6901234567892", "name": "鲜牛奶 950ml", "unit": "bottle"},
                        {"gtin": "96385074", "name": "GTIN-8", "name_en": "Eight", "size": "1"},
                    ],
                    "prices": [
                        {"gtin": milk, "version": 1, "amount": 1290, "effective_at": since},
                        {
                            "gtin": "96385074",
                            "version": 1,
                            "amount": 0,
                            "currency": "EUR",
                            "effective_at": "2026-01-01T00:00:00Z",
                        },
                    ],
                },
            ),
            (
                "catalog.upsert",
                {"prices": [{"gtin": milk, "version": 1, "amount": 1290, "effective_at": since}]},
            ),
            (
                "catalog.upsert",
                {"prices": [{"gtin": milk, "version": 1, "amount": 1, "effective_at": since}]},
            ),
            (
                "catalog.upsert",
                {
                    "prices": [
                        {"gtin": "06901234567885", "version": 1, "amount": 9, "effective_at": since}
                    ]
                },
            ),
            ("sync.replay", {"from_seq": 1}),
            ("sync.replay", {"from_seq": 1_000_000}),
            ("compartment.disable", {"compartment_id": "Z99", "reason": "no such one"}),
            ("compartment.disable", {"compartment_id": "A01"}),  # no reason: invalid_data
            # Documented, but this site has no `labels` section: unknown_type.
            ("label.bind", {"label_id": "0000021000000001", "gtin": "6901234567892"}),
        ]
    ]
    for envelope in sent:
        found = problems(command_payload, envelope)
        if "reason" in envelope["data"] or envelope["type"] != "compartment.disable":
            assert not found, (envelope["type"], found)
        else:
            assert found == ["data: 'reason' is a required property"]  # as the site says
    for envelope in [*sent, sent[0]]:  # the first one twice: replayed
        await dispatcher.handle(json.dumps(envelope).encode())
    await dispatcher.handle(b"\xff not json")  # malformed, no id
    tampered = {**sent[0], "id": "6a1f0b9e-0c1d-4e2f-8a3b-4c5d6e7f8091"}
    await dispatcher.handle(json.dumps(tampered).encode())  # bad_signature

    batches = await app.db.read(
        lambda s: read_batches(
            s, app.config.site.id, 0, max_events=500, max_bytes=256 * 1024, max_batches=100
        )
    )
    envelopes = [envelope for batch in batches for envelope in json.loads(batch.payload)]
    assert not problems(events_payload, envelopes[:500])
    answers = [e["data"] for e in envelopes if e["type"] == "command.result"]
    assert [(a["status"], a.get("error", {}).get("code")) for a in answers] == [
        ("ok", None),
        ("ok", None),
        ("ok", None),
        ("ok", None),
        ("ok", None),
        ("ok", None),
        ("ok", None),  # the same prices again: nothing to add
        ("failed", "price_version_conflict"),
        ("failed", "unknown_product"),
        ("ok", None),
        ("failed", "nothing_to_replay"),
        ("failed", "not_found"),
        ("rejected", "invalid_data"),
        ("rejected", "unknown_type"),
        ("rejected", "replayed"),
        ("rejected", "malformed"),
        ("rejected", "bad_signature"),
    ]
    assert publisher.rewound == [0]
    updated = [e["data"] for e in envelopes if e["type"] == "catalog.updated"]
    assert updated == [
        {
            "command_id": sent[5]["id"],
            "products_changed": 2,
            "prices_added": 2,
            "promotions_added": 0,
        }
    ]
    code_doc = document["components"]["schemas"]["CommandErrorCode"]["description"]
    results = documented_results(document)
    for answer in answers:
        if "error" in answer:
            assert f"`{answer['error']['code']}`" in code_doc
        if "result" in answer:
            assert set(answer["result"]) == results[answer["type"]], answer["type"]


def documented_results(document: dict[str, Any]) -> dict[str, set[str]]:
    """Per command type, the keys of the `result` that CommandType's description promises."""
    description = document["components"]["schemas"]["CommandType"]["description"]
    results: dict[str, set[str]] = {}
    for item in re.split(r"\n- ", description)[1:]:
        head, _, rest = item.partition("(")
        keys = re.search(r"Result `\{([^}]*)\}`", rest)
        assert keys is not None, head
        for type_ in re.findall(r"`([a-z_]+\.[a-z_]+)`", head):
            results[type_] = {k.strip() for k in keys.group(1).split(",")}
    assert set(results) == set(document["components"]["schemas"]["CommandType"]["enum"])
    return results


class _Publisher:
    """Stands in for the uplink's OutboxPublisher: records what sync.replay rewinds to."""

    def __init__(self) -> None:
        self.rewound: list[int] = []

    def rewind(self, to_seq: int) -> None:
        self.rewound.append(to_seq)


def test_command_data_schemas_have_the_fields_of_the_handlers(document: dict[str, Any]) -> None:
    locker_commands = pytest.importorskip("edge.lockers.commands", reason="not built")
    from edge.catalog.commands import register_catalog_commands
    from edge.sync.replay import register_sync_commands

    schemas = document["components"]["schemas"]
    documented = {
        rule["if"]["properties"]["type"].get("const"): rule["then"]["properties"]["data"]["$ref"]
        for rule in schemas["CommandEnvelope"]["allOf"]
    }
    for rule in schemas["CommandEnvelope"]["allOf"]:
        for type_ in rule["if"]["properties"]["type"].get("enum", []):
            documented[type_] = rule["then"]["properties"]["data"]["$ref"]
    documented.pop(None, None)
    assert set(documented) == set(schemas["CommandType"]["enum"])

    models: dict[str, Any] = {}

    class Recorder:
        def register(self, type_: str, schema: Any, _apply: Any) -> None:
            models[type_] = schema

        register_async = register

    locker_commands.register_locker_commands(Recorder(), _NoLockers())
    register_catalog_commands(Recorder(), ManualClock())  # type: ignore[arg-type]
    register_sync_commands(Recorder(), None, None)  # type: ignore[arg-type]
    members = MemberRegistry(None, None, None, "sface", 128, ManualClock())  # type: ignore[arg-type]
    members.register_commands(Recorder())  # type: ignore[arg-type]
    register_label_commands(Recorder(), None, None, None)  # type: ignore[arg-type]
    assert set(models) == set(documented)
    for type_, model in models.items():
        schema = schemas[documented[type_].removeprefix("#/components/schemas/")]
        assert_schema_has_the_fields_of(schemas, schema, model, type_)


def assert_schema_has_the_fields_of(
    schemas: dict[str, Any], schema: dict[str, Any], model: Any, where: str
) -> None:
    """Same fields, same required ones, no others; nested models (lists of them) as well."""
    fields = model.model_fields
    assert set(schema["properties"]) == set(fields), where
    assert set(schema["required"]) == {n for n, f in fields.items() if f.is_required()}, where
    assert schema["additionalProperties"] is False, where
    assert model.model_config.get("extra") == "forbid", where
    for name, field in fields.items():
        inner = getattr(field.annotation, "__args__", ())
        nested = [a for a in inner if isinstance(a, type) and hasattr(a, "model_fields")]
        if not nested:
            continue
        items = schema["properties"][name]["items"]
        items = schemas[items["$ref"].removeprefix("#/components/schemas/")]
        assert_schema_has_the_fields_of(schemas, items, nested[0], f"{where}.{name}[]")


class _NoLockers:
    """Enough of a LockerService for registering handlers (none is run)."""

    rules = None


# -------------------------------------------------- status, telemetry, state: as built


async def test_status_telemetry_and_snapshots_match_the_document(
    app: EdgeApp, document: dict[str, Any]
) -> None:
    reports = pytest.importorskip("edge.reports", reason="telemetry and snapshots not built")
    engine_module = pytest.importorskip("edge.sync.engine", reason="sync engine not built")
    uplink = pytest.importorskip("edge.sync.uplink", reason="sync engine not built")

    site_reports = reports.SiteReports(
        app.db,
        app.db.clock,
        app.health,
        app.temperature,
        uplink.UplinkStats(),
        app.keeper,
        app.cabinets,
    )
    messages = {
        "telemetry": await site_reports.telemetry(),
        "compartmentsState": await site_reports.compartments(),
        "devicesState": await site_reports.devices(),
        "cabinetsState": await site_reports.cabinets(),  # none configured here: {}
    }
    engine = engine_module.SyncEngine(
        MqttConfig(host="localhost"), app.config.site.id, app.version, app.db, app.db.clock
    )
    for state in ("online", "offline", "stopped"):
        messages[f"status {state}"] = json.loads(engine._status(state))
    for name, body in messages.items():
        # The engine publishes json.dumps of these: compare as JSON.
        body = json.loads(json.dumps(body))
        validator = validator_for(document, f"/components/messages/{name.split()[0]}/payload")
        assert not problems(validator, body), (name, problems(validator, body))
    assert messages["compartmentsState"] and messages["devicesState"]
    assert messages["telemetry"]["temperatures"]


def test_the_composition_root_registers_what_the_document_lists(
    make_app: Any, document: dict[str, Any]
) -> None:
    """The real app (with MQTT): its command types, its snapshot topics and its devices."""
    app: EdgeApp = make_app(mqtt={"host": "localhost"})
    try:
        assert app.sync is not None
        schemas = document["components"]["schemas"]
        # No `facepay` or `labels` section here: their commands are not registered.
        optional = FACEPAY_COMMANDS | LABEL_COMMANDS
        assert set(app.commands.types) | optional == set(schemas["CommandType"]["enum"])
        assert not set(app.commands.types) & optional
        things = document["components"]["parameters"]["thing"]["enum"]
        # This site has no cabinet: state/cabinets is published only where cabinets exist.
        assert set(app.sync.snapshots) | {"cabinets"} == set(things)
        assert "cabinets" not in app.sync.snapshots
        assert set(document["channels"]["state"]["messages"]) == set(things)
        operation = document["operations"]["sendState"]["messages"]
        assert {ref["$ref"].rsplit("/", 1)[-1] for ref in operation} == set(things)
        kinds = {device.kind for device in app.health.devices.values()}
        assert kinds <= set(schemas["DeviceKind"]["enum"])
    finally:
        app.db.close()
