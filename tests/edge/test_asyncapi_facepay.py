"""docs/asyncapi.yaml against a real face-payment run: what a site with ``facepay`` commits.

The document's own ``member.enroll`` example is applied by the site (signed with the key the
document names); a live shopper on the MJPEG camera simulator of ``test_facepay_flow`` is
enrolled, pays for a cabinet purchase by face (authorised), is enrolled again with an offline
limit below any basket and declined on the next purchase, and is removed; a template from
another recognizer fails (``model_mismatch``); the document's ``member.remove`` example ends it.
Every envelope committed must validate against the ``events`` payload, every command sent
against the ``command`` payload, and the face-payment data may carry documented fields only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from jsonschema import Draft7Validator

from edge.app import EdgeApp
from edge.clock import ManualClock
from edge.commands.dispatcher import CommandOutcome
from edge.commands.envelope import sign_command
from edge.commands.keys import public_key_b64
from edge.commands.schema import CommandData
from edge.demo.site import SimulatedSite
from edge.facepay.members import Consent, MemberEnroll, MemberRemove, encode_template
from edge.facepay.members import phone_digits_hash as digits_hash
from tests.edge import test_asyncapi as doc
from tests.edge import test_facepay_flow as flow
from tests.edge.test_asyncapi import (
    LABEL_COMMANDS,
    assert_schema_has_the_fields_of,
    data_schema,
    documented_key,
    documented_results,
    examples,
    problems,
    schema_named,
    undocumented,
)
from tests.edge.test_asyncapi_cabinet import committed, free
from tests.edge.test_cabinet_sessions import client, events, stocked_app

# The document's fixtures and the face-payment ones, shared rather than copied: the models are
# prepared once a module.
document = doc.document
events_payload = doc.events_payload
command_payload = doc.command_payload
models_cache = flow.models_cache
face_models = flow.face_models
grace = flow.grace
site = flow.site
camera = flow.camera

CAMERA = "kiosk-1/camera"
FACEPAY_TYPES = {"payment.authorized", "payment.declined", "member.enrolled", "member.removed"}
MEMBER_COMMANDS = {"member.enroll", "member.remove"}


@pytest.fixture
def clock() -> ManualClock:
    """The morning of the document's examples, so that its example commands are in force."""
    return ManualClock(datetime(2026, 11, 21, 9, 10, 30, tzinfo=UTC))


async def face_check(app: EdgeApp, http: httpx.AsyncClient, shopper: Any) -> dict[str, Any]:
    """A verified face check, once the camera delivers frames (on a loaded machine it may still
    be connecting, or reconnecting after a stall)."""
    if app.health.devices[CAMERA].available is not True:
        since = max((e.seq for e in events(app).events), default=0)
        await events(app).wait_for(
            "device.online", lambda e: e.data["device"] == CAMERA and e.seq > since, timeout=30
        )
    check: dict[str, Any] = await flow.face_check(http, shopper)
    assert check["state"] == "verified", (check["reason"], check["hint"])
    assert check["member_id"] == "grace", check
    return check


async def test_a_face_payment_run_commits_what_the_document_describes(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    clock: ManualClock,
    tmp_path: Path,
    models_cache: Path,
    face_models: Any,
    grace: Any,
    camera: Any,
    document: dict[str, Any],
    events_payload: Draft7Validator,
    command_payload: Draft7Validator,
) -> None:
    simulator, shopper = camera
    app: EdgeApp = await stocked_app(
        start_app,
        site,
        clock,
        per_product=10,
        # Steps given time to spare: this test is about the document, not liveness timing.
        facepay=flow.facepay_config(
            tmp_path, models_cache, simulator.url, liveness={"steps": 2, "step_timeout_s": 15}
        ),
        commands={
            "trusted_keys": [
                {"id": "cloud", "public_key": public_key_b64(flow.KEY)},
                {"id": "members-2026", "public_key": documented_key(document, "members-2026")},
            ]
        },
    )
    schemas = document["components"]["schemas"]
    # No broker and no `labels` here: sync.replay and the label commands are not registered;
    # the member commands are.
    optional = {"sync.replay"} | LABEL_COMMANDS
    assert set(app.commands.types) | optional == set(schemas["CommandType"]["enum"])
    sent: list[dict[str, Any]] = []

    async def command(envelope: dict[str, Any]) -> CommandOutcome:
        sent.append(envelope)
        outcome: CommandOutcome = await app.commands.handle(json.dumps(envelope).encode())
        await app.wait_checked()  # the gallery learns of an enrolment right after the commit
        return outcome

    def signed(type_: str, data: dict[str, Any]) -> dict[str, Any]:
        site_id = app.config.site.id
        return sign_command(
            flow.KEY, type_, data, ttl_s=300, kid="cloud", site=site_id, issued_at=clock.now()
        )

    grace_template = encode_template(flow.template_of(face_models, grace.photo))
    consent = {"version": "2026-03", "given_at": "2026-11-20T10:00:00+08:00", "channel": "kiosk"}
    enrol_grace = {
        "member_id": "grace",
        "model": flow.MODEL,
        "template": grace_template,
        "consent": consent,
        "phone_digits_hash": digits_hash("grace", "1906"),
    }
    commands_doc = examples(document, "command")

    outcome = await command(commands_doc["memberEnroll"])
    assert outcome.ok and outcome.result == {"member_id": "member-31", "replaced": False}
    outcome = await command(signed("member.enroll", enrol_grace))
    assert outcome.ok and outcome.result == {"member_id": "grace", "replaced": False}
    outcome = await command(signed("member.enroll", {**enrol_grace, "model": "arcface-r100"}))
    assert (outcome.status, outcome.error_code) == ("failed", "model_mismatch")
    assert app.facepay is not None
    assert "grace" in app.facepay.gallery and "member-31" in app.facepay.gallery

    async with client(app) as http:
        check = await face_check(app, http, shopper)
        session = await flow.buy_two_items(app, site, http, check["id"])
        authorized = await flow.payment(app, session, "authorized")
        # Enrolled again, with an offline limit below any basket: the next one is declined.
        await free(app)
        outcome = await command(signed("member.enroll", {**enrol_grace, "offline_limit": 1}))
        assert outcome.ok and outcome.result == {"member_id": "grace", "replaced": True}
        check = await face_check(app, http, shopper)
        session = await flow.buy_two_items(app, site, http, check["id"])
        declined = await flow.payment(app, session, "declined")
    assert authorized.data["mode"] == declined.data["mode"] == "offline"  # no broker
    assert declined.data["reason"] == "over_offline_limit"

    outcome = await command(signed("member.remove", {"member_id": "grace", "reason": "asked"}))
    assert outcome.ok and outcome.result == {"member_id": "grace", "removed": True}
    outcome = await command(signed("member.remove", {"member_id": "grace"}))
    assert outcome.ok and outcome.result == {"member_id": "grace", "removed": False}
    clock.advance(30 * 60)  # to the document's member.remove example
    outcome = await command(commands_doc["memberRemove"])
    assert outcome.ok and outcome.result == {"member_id": "member-31", "removed": True}

    # Every envelope committed, as the publisher sends them.
    batches = await committed(app)
    for batch in batches:
        assert not problems(events_payload, batch)
    envelopes = [envelope for batch in batches for envelope in batch]
    types = {envelope["type"] for envelope in envelopes}
    assert types >= FACEPAY_TYPES | {"cabinet.session_started", "order.created"}, types
    assert types <= set(schemas["EventType"]["enum"]), types - set(schemas["EventType"]["enum"])
    by_type: dict[str, list[dict[str, Any]]] = {}
    for envelope in envelopes:
        by_type.setdefault(envelope["type"], []).append(envelope)

    # The face-payment data carry documented fields only (the schemas allow more: additive).
    for type_ in FACEPAY_TYPES | {"cabinet.session_started", "order.created"}:
        schema = data_schema(document, "EventEnvelope", type_)
        for envelope in by_type[type_]:
            assert not undocumented(document, schema, envelope["data"]), envelope
    started = by_type["cabinet.session_started"]
    assert [e["data"]["member_source"] for e in started] == ["face", "face"]
    assert {e["data"]["payment"]["method"] for e in by_type["order.created"]} == {"face"}
    assert [e["data"]["replaced"] for e in by_type["member.enrolled"]] == [False, False, True]
    assert [e["data"]["member_id"] for e in by_type["member.removed"]] == ["grace", "member-31"]
    assert "offline_usage" in authorized.data and declined.data["fallback"] == ["qr"]
    # Biometric data never leaves in an event: neither template is anywhere in the outbox.
    outbox = json.dumps(envelopes)
    assert grace_template not in outbox
    assert commands_doc["memberEnroll"]["data"]["template"] not in outbox
    assert_as_the_examples_say(document, envelopes)
    assert_not_vacuous(events_payload, by_type)

    # The commands sent, the document's and ours, and their answers.
    for envelope in sent:
        assert not problems(command_payload, envelope), envelope["type"]
    answers = [
        e["data"]
        for e in envelopes
        if e["type"] == "command.result" and e["data"].get("type") in MEMBER_COMMANDS
    ]
    assert len(answers) == len(sent)
    results = documented_results(document)
    error_codes = schemas["CommandErrorCode"]["description"]
    for answer in answers:
        if "result" in answer:
            assert set(answer["result"]) == results[answer["type"]], answer
        else:
            assert f"`{answer['error']['code']}`" in error_codes, answer
    assert_commands_not_vacuous(command_payload, sent)


def assert_as_the_examples_say(document: dict[str, Any], envelopes: list[dict[str, Any]]) -> None:
    """The document's member examples are what the site committed for its example commands."""
    events_doc = examples(document, "events")
    for name, varying in [("memberEnrolled", "enrolled_at"), ("memberRemoved", "gallery_size")]:
        example = events_doc[name]
        command_id = example[0]["data"]["command_id"]
        real = [e for e in envelopes if e["data"].get("command_id") == command_id]
        assert [e["type"] for e in real] == [e["type"] for e in example], name
        assert [e["seq"] for e in real] == [real[0]["seq"], real[0]["seq"] + 1]
        event, answer = real
        expected_event = {k: v for k, v in example[0]["data"].items() if k != varying}
        assert {k: v for k, v in event["data"].items() if k != varying} == expected_event
        assert answer["data"] == example[1]["data"]


def assert_not_vacuous(
    events_payload: Draft7Validator, by_type: dict[str, list[dict[str, Any]]]
) -> None:
    """Real face-payment envelopes, each broken in one way the document must notice."""
    authorized = by_type["payment.authorized"][0]
    declined = by_type["payment.declined"][0]
    enrolled = by_type["member.enrolled"][0]
    removed = by_type["member.removed"][0]
    cases: list[tuple[dict[str, Any], Callable[[dict[str, Any]], Any]]] = [
        (authorized, lambda d: d.pop("verification")),
        (authorized, lambda d: d.pop("offline_usage")),  # required offline
        (authorized, lambda d: d.update(mode="cloud")),
        (authorized, lambda d: d.update(amount=5.5)),
        (authorized, lambda d: d.update(method="qr")),
        (authorized, lambda d: d["verification"].update(method="2:1")),
        (authorized, lambda d: d["verification"].update(score=1.5)),
        (authorized, lambda d: d["verification"]["liveness"].update(challenge=["smile"])),
        (declined, lambda d: d.pop("reason")),
        (declined, lambda d: d.update(reason="insufficient_funds")),
        (declined, lambda d: d.update(fallback=[])),
        (enrolled, lambda d: d.pop("consent")),
        (enrolled, lambda d: d["consent"].update(given_at="yesterday")),
        (enrolled, lambda d: d.update(member_id="a/b")),
        (removed, lambda d: d.update(template_erased=False)),
        (removed, lambda d: d.pop("gallery_size")),
    ]
    for envelope, change in cases:
        broken = json.loads(json.dumps(envelope))
        change(broken["data"])
        assert problems(events_payload, [broken]), (envelope["type"], broken["data"])


def assert_commands_not_vacuous(
    command_payload: Draft7Validator, sent: list[dict[str, Any]]
) -> None:
    """Data the site rejects as ``invalid_data`` the document rejects too (unsigned: the
    envelope's schema does not check signatures)."""
    enroll = next(e for e in sent if e["type"] == "member.enroll" and e.get("kid") == "cloud")
    remove = next(e for e in sent if e["type"] == "member.remove")
    cases: list[tuple[dict[str, Any], Callable[[dict[str, Any]], Any]]] = [
        (enroll, lambda d: d.update(template="not base64!")),
        (enroll, lambda d: d.update(photo="jpeg")),
        (enroll, lambda d: d["consent"].pop("channel")),
        (enroll, lambda d: d.update(phone_digits_hash="1906")),
        (enroll, lambda d: d.update(offline_limit=-1)),
        (remove, lambda d: d.pop("member_id")),
        (remove, lambda d: d.update(member_id="")),
    ]
    models: dict[str, type[CommandData]] = {
        "member.enroll": MemberEnroll,
        "member.remove": MemberRemove,
    }
    for envelope, change in cases:
        broken = json.loads(json.dumps(envelope))
        change(broken["data"])
        assert problems(command_payload, broken), (envelope["type"], broken["data"])
        with pytest.raises(ValueError):  # the site's own schema: pydantic's ValidationError
            models[envelope["type"]].model_validate(broken["data"])


def test_member_command_schemas_have_the_fields_of_the_handlers(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert set(schemas["CommandType"]["enum"]) >= MEMBER_COMMANDS
    enroll = data_schema(document, "CommandEnvelope", "member.enroll")
    remove = data_schema(document, "CommandEnvelope", "member.remove")
    assert_schema_has_the_fields_of(schemas, enroll, MemberEnroll, "member.enroll")
    assert_schema_has_the_fields_of(schemas, remove, MemberRemove, "member.remove")
    consent = schema_named(document, enroll["properties"]["consent"]["$ref"])
    assert_schema_has_the_fields_of(schemas, consent, Consent, "member.enroll.consent")
    # The document's example template is one the site's recognizer could have made.
    example = examples(document, "command")["memberEnroll"]["data"]
    vector = MemberEnroll.model_validate(example).vector()
    assert vector.shape == (128,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-5
