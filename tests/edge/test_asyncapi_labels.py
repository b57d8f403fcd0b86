"""docs/asyncapi.yaml against a real shelf-label run: what a site with ``labels`` commits.

On the OpenEPaperLink access point simulator of ``test_labels_flow``, over real HTTP, whose
tags check in by themselves: the document's own ``label.bind`` example is applied (signed with
the key the document names) and its label shows the catalogue's price; a second label is bound
by its MAC with separators; binds naming an unknown product or access point fail and malformed
ones are rejected; a price change is delivered; the access point answers 503 once (it goes
offline, then online) and the next change still arrives; the document's ``label.refresh``
example and one of ours push labels again; a label whose battery died never fetches its new
price (``label.failed``). Every envelope committed must validate against the ``events``
payload and carry documented fields only, every command sent must validate against the
``command`` payload (or be rejected by both the document and the site), results carry the
documented keys, errors documented codes, and the document's label examples are what the site
committed for its example commands.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from jsonschema import Draft7Validator

from drivers.esl.simulator import AccessPointSimulator
from edge.app import EdgeApp
from edge.clock import ManualClock
from edge.commands.dispatcher import CommandOutcome
from edge.commands.envelope import sign_command
from edge.commands.keys import public_key_b64
from edge.commands.schema import CommandData
from edge.labels.commands import LabelBind, LabelRefresh
from edge.reports import SiteReports
from edge.sync.uplink import UplinkStats
from tests.edge import test_asyncapi as doc
from tests.edge import test_labels_flow as flow
from tests.edge.test_asyncapi import (
    FACEPAY_COMMANDS,
    LABEL_COMMANDS,
    SOURCES,
    assert_schema_has_the_fields_of,
    data_schema,
    documented_key,
    documented_results,
    examples,
    problems,
    undocumented,
    validator_for,
)
from tests.edge.test_asyncapi_cabinet import committed
from tests.edge.test_labels_flow import BREAD, MILK, TAG_A, TAG_B, events

# The access point simulator with two tags and the document's fixtures, shared, not copied.
ap = flow.ap
document = doc.document
events_payload = doc.events_payload
command_payload = doc.command_payload

KEY_ID = "pricing-2026"  # the key the document's label examples are signed with
ACCESS_POINT = "ap1"  # flow.labels_config's
LABEL_TYPES = {"label.updated", "label.failed", "device.offline", "device.online"}
MODELS: dict[str, type[CommandData]] = {"label.bind": LabelBind, "label.refresh": LabelRefresh}


@pytest.fixture
def clock() -> ManualClock:
    """The morning of the document's examples, so that its example commands are in force."""
    return ManualClock(datetime(2026, 11, 21, 9, 20, 30, tzinfo=UTC))


def record_commands(app: EdgeApp) -> list[dict[str, Any]]:
    """Every command envelope the site is handed from now on, ours and ``flow.send``'s."""
    sent: list[dict[str, Any]] = []
    handle = app.commands.handle

    async def recorded(payload: bytes) -> CommandOutcome:
        sent.append(json.loads(payload))
        return await handle(payload)

    app.commands.handle = recorded  # type: ignore[method-assign]
    return sent


async def command(app: EdgeApp, envelope: dict[str, Any]) -> CommandOutcome:
    outcome: CommandOutcome = await app.commands.handle(json.dumps(envelope).encode())
    return outcome


def signed(app: EdgeApp, clock: ManualClock, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    return sign_command(
        flow.KEY,
        type_,
        data,
        ttl_s=300,
        kid="cloud",
        site=app.config.site.id,
        issued_at=clock.now(),
    )


def last_updated(app: EdgeApp, label: str) -> Any:
    return [e for e in events(app).of_type("label.updated") if e.data["label_id"] == label][-1]


async def updated_again(app: EdgeApp, label: str, after: Any) -> Any:
    """The label's next ``label.updated`` after the envelope ``after``."""
    return await events(app).wait_for(
        "label.updated", lambda e: e.data["label_id"] == label and e.seq > after.seq, timeout=15
    )


async def test_a_shelf_label_run_commits_what_the_document_describes(
    start_app: Callable[..., Any],
    clock: ManualClock,
    ap: AccessPointSimulator,
    document: dict[str, Any],
    events_payload: Draft7Validator,
    command_payload: Draft7Validator,
) -> None:
    app: EdgeApp = await start_app(
        labels=flow.labels_config(ap, confirm_timeout_s=60),
        commands={
            "trusted_keys": [
                {"id": "cloud", "public_key": public_key_b64(flow.KEY)},
                {"id": KEY_ID, "public_key": documented_key(document, KEY_ID)},
            ]
        },
    )
    schemas = document["components"]["schemas"]
    # No broker and no `facepay` here: sync.replay and the member commands are not registered.
    registered = set(app.commands.types)
    assert registered | {"sync.replay"} | FACEPAY_COMMANDS == set(schemas["CommandType"]["enum"])
    assert registered >= LABEL_COMMANDS
    assert app.health.devices[ACCESS_POINT].kind == "esl_access_point"
    assert app.labels is not None
    deliverer = app.labels.deliverers[ACCESS_POINT]
    sent = record_commands(app)
    commands_doc = examples(document, "command")
    await flow.catalogue(app, clock)

    # The document's label.bind: its label shows the catalogue's price.
    outcome = await command(app, commands_doc["labelBind"])
    assert outcome.ok and outcome.result == {
        "label_id": TAG_A,
        "gtin": MILK,
        "template": "2.9-bwr",
        "queued": 1,
    }
    await flow.updated(app, TAG_A, 1)
    # A second label by its MAC with separators, drawn black and white.
    outcome = await flow.send(
        app,
        clock,
        "label.bind",
        {"label_id": "00:00:02:10:00:00:00:02", "gtin": BREAD[1:], "template": "2.9-bw"},
    )
    assert outcome.result == {"label_id": TAG_B, "gtin": BREAD, "template": "2.9-bw", "queued": 1}
    await flow.updated(app, TAG_B, 1)
    # The same binding again: the label has that content already, nothing is queued.
    again = {"label_id": TAG_B, "gtin": BREAD, "template": "2.9-bw"}
    outcome = await flow.send(app, clock, "label.bind", again)
    assert outcome.result == {"label_id": TAG_B, "gtin": BREAD, "template": "2.9-bw", "queued": 0}

    # Binds the site cannot apply: failed, with the documented codes.
    for data, code in [
        ({"label_id": TAG_B, "gtin": "96385074"}, "unknown_product"),
        ({"label_id": TAG_B, "gtin": MILK, "access_point": "ap9"}, "unknown_access_point"),
    ]:
        outcome = await command(app, signed(app, clock, "label.bind", data))
        assert (outcome.status, outcome.error_code) == ("failed", code)
    # Data the site rejects before applying anything: the document rejects it too.
    invalid = [
        signed(app, clock, "label.bind", {"label_id": "L-1", "gtin": MILK}),
        signed(app, clock, "label.bind", {"label_id": TAG_B, "gtin": MILK, "template": "7.5-bw"}),
        signed(app, clock, "label.bind", {"label_id": TAG_B}),  # no gtin (null would unbind)
        signed(app, clock, "label.refresh", {"all": True, "gtins": [MILK]}),
    ]
    for envelope in invalid:
        assert problems(command_payload, envelope), envelope["data"]
        outcome = await command(app, envelope)
        assert (outcome.status, outcome.error_code) == ("rejected", "invalid_data")

    # A price change reaches the label.
    await flow.send(
        app, clock, "catalog.upsert", {"prices": [flow.price(MILK, 2, 1190, clock, hours=-0.5)]}
    )
    await flow.updated(app, TAG_A, 2)

    # The access point answers 503 once: offline, retried after the backoff, online again.
    ap.fail_next(1, status=503, body="overloaded")
    await flow.send(
        app, clock, "catalog.upsert", {"prices": [flow.price(MILK, 3, 990, clock, hours=-0.1)]}
    )
    down = await events(app).wait_for(
        "device.offline", lambda e: e.data["device"] == ACCESS_POINT, timeout=15
    )
    flow.backoff_elapsed(app, clock)
    await flow.updated(app, TAG_A, 3)
    await events(app).wait_for(
        "device.online",
        lambda e: e.data["device"] == ACCESS_POINT and e.seq > down.seq,
        timeout=15,
    )

    # The document's label.refresh, half an hour later: the same content, confirmed again.
    clock.advance(30 * 60)
    before = last_updated(app, TAG_A)
    outcome = await command(app, commands_doc["labelRefresh"])
    assert outcome.ok and outcome.result == {"labels": 1, "queued": 1}
    again = await updated_again(app, TAG_A, before)
    assert again.data["content_key"] == before.data["content_key"]
    # And ours, by label id; a label that is not bound is skipped.
    before = last_updated(app, TAG_B)
    outcome = await flow.send(
        app, clock, "label.refresh", {"label_ids": [TAG_B.lower(), "0000021000000099"]}
    )
    assert outcome.result == {"labels": 1, "queued": 1}
    await updated_again(app, TAG_B, before)

    # A label whose battery died never fetches its new price: label.failed.
    ap.set_online(TAG_B, False)
    uploads = deliverer.uploads
    await flow.send(
        app, clock, "catalog.upsert", {"prices": [flow.price(BREAD, 2, 750, clock, -0.1)]}
    )
    await deliverer.wait_until(lambda d: d.uploads > uploads, timeout=15)
    assert await deliverer.confirm() == 0  # uploaded; the tag never fetches it
    clock.advance(61)  # past labels.confirm_timeout_s
    await deliverer.confirm()
    await events(app).wait_for("label.failed", timeout=5)

    # Telemetry and the devices snapshot, with the access point in them.
    reports = SiteReports(
        app.db, app.db.clock, app.health, app.temperature, UplinkStats(), app.keeper, app.cabinets
    )
    devices = json.loads(json.dumps(await reports.devices()))
    telemetry = json.loads(json.dumps(await reports.telemetry()))
    for name, body in [("devicesState", devices), ("telemetry", telemetry)]:
        validator = validator_for(document, f"/components/messages/{name}/payload")
        assert not problems(validator, body), (name, problems(validator, body))
    assert {"name": ACCESS_POINT, "kind": "esl_access_point", "available": True} in [
        {k: d[k] for k in ("name", "kind", "available")} for d in devices
    ]

    # Every envelope committed, as the publisher sends them.
    batches = await committed(app)
    for batch in batches:
        assert not problems(events_payload, batch)
    envelopes = [envelope for batch in batches for envelope in batch]
    types = {envelope["type"] for envelope in envelopes}
    assert types >= LABEL_TYPES | {"command.result", "catalog.updated"}, types
    assert types <= set(schemas["EventType"]["enum"]), types - set(schemas["EventType"]["enum"])
    by_type: dict[str, list[dict[str, Any]]] = {}
    for envelope in envelopes:
        by_type.setdefault(envelope["type"], []).append(envelope)
    # The label data carry documented fields only (the schemas allow more: additive).
    for type_ in LABEL_TYPES:
        schema = data_schema(document, "EventEnvelope", type_)
        for envelope in by_type[type_]:
            assert not undocumented(document, schema, envelope["data"]), envelope
    assert {e["data"]["kind"] for e in by_type["device.offline"]} == {"esl_access_point"}
    versions = [
        (e["data"]["label_id"], e["data"]["price_version"]) for e in by_type["label.updated"]
    ]
    assert versions == [(TAG_A, 1), (TAG_B, 1), (TAG_A, 2), (TAG_A, 3), (TAG_A, 3), (TAG_B, 1)]
    assert_as_the_examples_say(document, envelopes)
    assert_not_vacuous(events_payload, by_type)

    # The commands sent, the document's and ours, and their answers.
    for envelope in sent:
        if envelope not in invalid:
            assert not problems(command_payload, envelope), (envelope["type"], envelope["data"])
    answers = [
        e["data"]
        for e in envelopes
        if e["type"] == "command.result" and e["data"].get("type") in LABEL_COMMANDS
    ]
    assert len(answers) == len([e for e in sent if e["type"] in LABEL_COMMANDS]) == 11
    results = documented_results(document)
    error_codes = schemas["CommandErrorCode"]["description"]
    for answer in answers:
        if "result" in answer:
            assert set(answer["result"]) == results[answer["type"]], answer
        else:
            assert f"`{answer['error']['code']}`" in error_codes, answer
    assert_commands_not_vacuous(command_payload, sent)


def assert_as_the_examples_say(document: dict[str, Any], envelopes: list[dict[str, Any]]) -> None:
    """The document's label examples are what the site committed: the answers to its example
    commands, the label.updated of the example's label, and the label.failed of the dead one."""
    events_doc = examples(document, "events")
    for name in ("labelBound", "labelRefreshed"):
        (example,) = events_doc[name]
        command_id = example["data"]["command_id"]
        real = [e for e in envelopes if e["data"].get("command_id") == command_id]
        assert [e["type"] for e in real] == ["command.result"], name
        assert real[0]["data"] == example["data"], name
    for name, type_ in [("labelUpdated", "label.updated"), ("labelFailed", "label.failed")]:
        (example,) = events_doc[name]
        assert example["type"] == type_
        real = [e["data"] for e in envelopes if e["type"] == type_]
        assert example["data"] in real, (name, real)


def assert_not_vacuous(
    events_payload: Draft7Validator, by_type: dict[str, list[dict[str, Any]]]
) -> None:
    """Real label envelopes, each broken in one way the document must notice."""
    updated = by_type["label.updated"][0]
    failed = by_type["label.failed"][0]
    offline = by_type["device.offline"][0]
    cases: list[tuple[dict[str, Any], Callable[[dict[str, Any]], Any]]] = [
        (updated, lambda d: d.pop("content_key")),
        (updated, lambda d: d.update(label_id="00:00:02:10:00:00:00:01")),  # reported as stored
        (updated, lambda d: d.update(gtin="6901234567892")),  # GTIN-14 in events
        (updated, lambda d: d.update(template="7.5-bwr")),
        (updated, lambda d: d.update(amount=12.9)),
        (updated, lambda d: d.update(attempts=0)),
        (updated, lambda d: d.pop("promotion_id")),
        (failed, lambda d: d.update(reason="battery_low")),
        (failed, lambda d: d.update(shown_price_version=0)),
        (failed, lambda d: d.pop("shown_price_version")),
        (failed, lambda d: d.pop("attempts")),
        (offline, lambda d: d.update(kind="esl_ap")),
    ]
    for envelope, change in cases:
        broken = json.loads(json.dumps(envelope))
        change(broken["data"])
        assert problems(events_payload, [broken]), (envelope["type"], broken["data"])


def assert_commands_not_vacuous(
    command_payload: Draft7Validator, sent: list[dict[str, Any]]
) -> None:
    """More data the site rejects as ``invalid_data`` that the document rejects too (unsigned:
    the envelope's schema does not check signatures)."""
    bind = next(e for e in sent if e["type"] == "label.bind" and e.get("kid") == KEY_ID)
    refresh = next(e for e in sent if e["type"] == "label.refresh" and e.get("kid") == KEY_ID)
    cases: list[tuple[dict[str, Any], Callable[[dict[str, Any]], Any]]] = [
        (bind, lambda d: d.update(label_id="00000210000000")),  # 14 digits
        (bind, lambda d: d.update(label_id="00000210000000GG")),
        (bind, lambda d: d.update(gtin="6901234567")),  # 10 digits
        (bind, lambda d: d.update(template="2.9")),
        (bind, lambda d: d.update(shelf="A3")),
        (refresh, lambda d: d.clear()),
        (refresh, lambda d: d.update(all=True)),
        (refresh, lambda d: d.update(label_ids=[TAG_A])),
        (refresh, lambda d: d.update(gtins=None)),
        (refresh, lambda d: d.update(gtins=["6901234567892"] * 20_001)),
    ]
    for envelope, change in cases:
        broken = json.loads(json.dumps(envelope))
        change(broken["data"])
        with pytest.raises(ValueError):  # the site's own schema: pydantic's ValidationError
            MODELS[envelope["type"]].model_validate(broken["data"])
        assert problems(command_payload, broken), (envelope["type"], broken["data"])
    # What the site accepts, the document accepts: every selector alone, an unbind, defaults.
    accepted = [
        (bind, {"label_id": "00-00-02-10-00-00-00-01", "gtin": None}),
        (bind, {"label_id": "aabbccddeeff", "gtin": "96385074", "template": None}),
        (refresh, {"all": True}),
        (refresh, {"label_ids": [], "gtins": None, "all": False}),
    ]
    for envelope, data in accepted:
        MODELS[envelope["type"]].model_validate(data)
        assert not problems(command_payload, {**envelope, "data": data}), data


def test_label_command_schemas_have_the_fields_of_the_handlers(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert set(schemas["CommandType"]["enum"]) >= LABEL_COMMANDS
    for type_, model in MODELS.items():
        schema = data_schema(document, "CommandEnvelope", type_)
        assert_schema_has_the_fields_of(schemas, schema, model, type_)
    # The document's example bind is one the site's own schema takes as it is.
    example = examples(document, "command")["labelBind"]["data"]
    assert LabelBind.model_validate(example).gtin == MILK


def label_calls(*names: str) -> Iterator[ast.Call]:
    """Every call of a function or method of one of these names in the label sources."""
    for path in sorted((SOURCES / "labels").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called in names:
                    yield node


def test_the_label_failed_reasons_are_those_the_code_gives(document: dict[str, Any]) -> None:
    """Every ``label.failed`` reason the controller writes starts with a documented code."""
    reason = document["components"]["schemas"]["LabelFailedData"]["properties"]["reason"]
    found = re.fullmatch(r"\^\(([a-z_|]+)\)\(:\|\$\)", reason["pattern"])
    assert found is not None, reason["pattern"]
    given: set[str] = set()
    for call in label_calls("_fail", "mark_failed"):
        last = call.args[-1]
        if isinstance(last, ast.Name) and last.id == "reason":
            continue  # Deliverer._fail handing its own argument on: its callers are checked
        if isinstance(last, ast.JoinedStr):  # f"upload_refused: {exc}"
            last = last.values[0]
            assert isinstance(last, ast.Constant) and str(last.value).endswith(": ")
            given.add(str(last.value).removesuffix(": "))
        else:
            assert isinstance(last, ast.Constant), ast.dump(call)
            given.add(str(last.value))
    assert given == set(found.group(1).split("|"))
