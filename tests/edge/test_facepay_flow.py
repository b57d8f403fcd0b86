"""Face payment end to end: a signed ``member.enroll``, a face check on a camera (the MJPEG
camera simulator showing a real photo that turns and blinks when prompted), the cabinet opened
with the verified check, and the payment decided on the device — online, offline within limits,
and declined beyond them. Also: a still photo on a video file fails, removal is verifiable."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from drivers.camera.simulator import MjpegCameraSimulator, write_video
from edge.app import EdgeApp
from edge.clock import ManualClock
from edge.commands.envelope import sign_command
from edge.commands.keys import private_key_from_seed, public_key_b64
from edge.db.tables import Member
from edge.demo.shopper import ShopperPhoto, SimulatedShopper
from edge.demo.site import SimulatedSite
from edge.facepay.members import encode_template, phone_digits_hash
from edge.facepay.templates import write_key_file
from models.align import align_face
from models.faces import load_face_models
from models.prepare import prepare_models
from tests.edge.test_cabinet_sessions import (
    KIOSK,
    OPERATOR,
    client,
    closed,
    door_opened,
    events,
    stocked_app,
)
from tests.photos import load_photo

KEY = private_key_from_seed(b"facepay-tests-upstream-key-32byt")
MODEL = "sface-2021dec-int8bq"


@pytest.fixture(scope="module")
def models_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("models")
    prepare_models(cache)
    return cache


@pytest.fixture(scope="module")
def face_models(models_cache: Path) -> Any:
    return load_face_models(models_cache, threads=2)


@pytest.fixture(scope="module")
def grace(face_models: Any) -> ShopperPhoto:
    return ShopperPhoto(load_photo("grace_hopper"), face_models.detector)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[SimulatedSite]:
    simulated = SimulatedSite(tmp_path / "site", with_cabinet=True)
    await simulated.start()
    yield simulated
    await simulated.stop()


@pytest.fixture
async def camera(
    grace: ShopperPhoto,
) -> AsyncIterator[tuple[MjpegCameraSimulator, SimulatedShopper]]:
    shopper = SimulatedShopper(grace, seed=3)
    simulator = MjpegCameraSimulator(shopper, fps=15)
    await simulator.start()
    yield simulator, shopper
    await simulator.stop()


def template_of(face_models: Any, photo: np.ndarray, which: int = 0) -> np.ndarray:
    faces = face_models.detector.detect(photo)
    faces.sort(key=lambda f: f.box[0])
    vector: np.ndarray = face_models.embedder.embed(align_face(photo, faces[which].landmarks))
    return vector


def facepay_config(tmp_path: Path, models_cache: Path, uri: str, **changes: Any) -> dict[str, Any]:
    key_file = tmp_path / "template.key"
    if not key_file.exists():
        write_key_file(key_file)
    config: dict[str, Any] = {
        "template_key_file": str(key_file),
        "models": {"cache_dir": str(models_cache)},
        "terminals": [
            # A video file stands for a camera by playing in a loop.
            {
                "id": "kiosk-1",
                "camera": {"uri": uri, "stall_timeout_s": 2, "loop": uri.endswith(".avi")},
            }
        ],
        "liveness": {"steps": 2},
    }
    config.update(changes)
    return config


async def send(app: EdgeApp, clock: ManualClock, type_: str, data: dict[str, Any]) -> Any:
    envelope = sign_command(KEY, type_, data, ttl_s=300, issued_at=clock.now())
    return await app.commands.handle(json.dumps(envelope).encode())


async def enroll(
    app: EdgeApp, clock: ManualClock, member: str, vector: np.ndarray, **extra: Any
) -> None:
    outcome = await send(
        app,
        clock,
        "member.enroll",
        {
            "member_id": member,
            "model": MODEL,
            "template": encode_template(vector),
            "consent": {"version": "2026-01", "given_at": "2026-01-01T00:00:00Z", "channel": "app"},
            **extra,
        },
    )
    assert outcome.ok, outcome
    await app.wait_checked()  # the gallery learns of it right after the commit
    assert app.facepay is not None and member in app.facepay.gallery


async def started(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    clock: ManualClock,
    tmp_path: Path,
    models_cache: Path,
    uri: str,
    **facepay: Any,
) -> EdgeApp:
    return await stocked_app(
        start_app,
        site,
        clock,
        per_product=10,
        facepay=facepay_config(tmp_path, models_cache, uri, **facepay),
        commands={"trusted_keys": [{"id": "cloud", "public_key": public_key_b64(KEY)}]},
    )


async def face_check(
    http: httpx.AsyncClient, shopper: SimulatedShopper | None, digits: str | None = None
) -> dict[str, Any]:
    """Start a check and act as the shopper: do each prompted step once."""
    r = await http.post("/api/v1/kiosk/face/checks", headers=KIOSK)
    assert r.status_code == 201, r.text
    check: dict[str, Any] = r.json()
    done_prompts: set[tuple[int, str]] = set()
    steps = 0
    for _ in range(200):
        if check["state"] in ("verified", "failed"):
            return check
        if check["state"] == "needs_phone_digits" and digits is None:
            return check  # the caller types them
        prompt = check["prompt"]
        if check["state"] == "needs_phone_digits" and digits is not None:
            r = await http.post(
                f"/api/v1/kiosk/face/checks/{check['id']}/digits",
                headers=KIOSK,
                json={"digits": digits},
            )
            assert r.status_code == 200, r.text
            check = r.json()
            continue
        acting = shopper is not None and prompt in ("blink", "turn_left", "turn_right")
        if acting and (steps, prompt) not in done_prompts:
            assert shopper is not None
            await asyncio.sleep(0.4)  # a person's reaction time, past min_reaction_s
            shopper.act(prompt)
            done_prompts.add((steps, prompt))
            steps += 1
        r = await http.get(
            f"/api/v1/kiosk/face/checks/{check['id']}", headers=KIOSK, params={"wait": 2}
        )
        check = r.json()
    raise AssertionError(f"the face check never finished: {check}")


async def open_by_face(http: httpx.AsyncClient, check_id: str) -> httpx.Response:
    return await http.post(
        "/api/v1/kiosk/cabinets/K1/sessions",
        headers=KIOSK,
        json={"member_source": "face", "face_check_id": check_id},
    )


async def buy_two_items(
    app: EdgeApp, site: SimulatedSite, http: httpx.AsyncClient, check_id: str
) -> dict[str, Any]:
    r = await open_by_face(http, check_id)
    assert r.status_code == 201, r.text
    session: dict[str, Any] = r.json()
    await door_opened(app, session["id"])
    for epc in sorted(site.tags.epcs())[:2]:
        site.tags.remove(epc)
    site.close_cabinet()
    await closed(app, session["id"])
    return session


async def payment(app: EdgeApp, session: dict[str, Any], outcome: str) -> Any:
    order = await events(app).wait_for(
        "order.created", lambda e: e.data["session_id"] == session["id"], timeout=30
    )
    return await events(app).wait_for(
        f"payment.{outcome}", lambda e: e.data["order_id"] == order.data["order_id"], timeout=30
    )


async def test_a_live_enrolled_shopper_pays_by_face_and_nobody_else_does(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    clock: ManualClock,
    tmp_path: Path,
    models_cache: Path,
    face_models: Any,
    grace: ShopperPhoto,
    camera: tuple[MjpegCameraSimulator, SimulatedShopper],
) -> None:
    simulator, shopper = camera
    app = await started(start_app, site, clock, tmp_path, models_cache, simulator.url)
    await enroll(app, clock, "grace", template_of(face_models, grace.photo))
    group = load_photo("t1")
    for i in range(6):  # six other people: the gallery must pick the right one
        await enroll(app, clock, f"t1-{i}", template_of(face_models, group, i))
    async with client(app) as http:
        check = await face_check(http, shopper)
        assert check["state"] == "verified", (check["reason"], check["hint"])
        assert check["member_id"] == "grace" and check["method"] == "1:N"
        session = await buy_two_items(app, site, http, check["id"])
        paid = await payment(app, session, "authorized")
        # Used once: the same check cannot open the cabinet again.
        r = await open_by_face(http, check["id"])
        assert r.status_code == 404, r.text
        r = await http.get("/metrics")
    assert paid.data["member_id"] == "grace"
    assert paid.data["mode"] == "online" or paid.data["mode"] == "offline"
    evidence = paid.data["verification"]
    assert evidence["method"] == "1:N" and evidence["score"] >= 0.5
    assert len(evidence["liveness"]["challenge"]) == 2
    # Scores and codes only: no image, crop or template anywhere in the event.
    assert "template" not in json.dumps(paid.data) and len(json.dumps(paid.data)) < 2000
    assert 'edge_facepay_checks{outcome="verified"} 1.0' in r.text


async def test_a_still_photo_on_a_video_file_is_recognised_but_fails_liveness(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    clock: ManualClock,
    tmp_path: Path,
    models_cache: Path,
    face_models: Any,
    grace: ShopperPhoto,
) -> None:
    """A printed photo held up to the camera: the same picture, frame after frame."""
    video = tmp_path / "photo.avi"
    write_video(video, [grace.photo] * 30, fps=15)
    app = await started(
        start_app,
        site,
        clock,
        tmp_path,
        models_cache,
        str(video),
        liveness={"steps": 2, "step_timeout_s": 2},
    )
    await enroll(app, clock, "grace", template_of(face_models, grace.photo))
    config = app.config.facepay
    assert config is not None
    async with client(app) as http:
        # The file is the camera: looped, so the check sees the photo for as long as it runs.
        check = await face_check(http, shopper=None)
        assert check["state"] == "failed"
        assert check["reason"] in ("no_motion", "challenge_timeout", "replayed_frames")
        r = await open_by_face(http, check["id"])
        assert r.status_code == 409 and r.json()["error"]["code"] == "not_verified"
    assert not [e for e in events(app).events if e.type == "door.opened"]


async def test_a_missing_camera_gives_a_clear_refusal_and_the_site_runs_on(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    clock: ManualClock,
    tmp_path: Path,
    models_cache: Path,
) -> None:
    app = await started(
        start_app, site, clock, tmp_path, models_cache, str(tmp_path / "no-such-camera.avi")
    )
    async with client(app) as http:
        r = await http.post("/api/v1/kiosk/face/checks", headers=KIOSK)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "camera_unavailable"
        assert "QR" in r.json()["error"]["message"]  # face payment is never the only way
        # The cabinet still sells to members with a QR code.
        r = await http.post(
            "/api/v1/kiosk/cabinets/K1/sessions",
            headers=KIOSK,
            json={"member_source": "qr", "member_id": "m-1"},
        )
        assert r.status_code == 201, r.text
        devices = (await http.get("/api/v1/devices", headers=OPERATOR)).json()
    camera = next(d for d in devices if d["name"] == "kiosk-1/camera")
    assert camera["available"] is False and "could not be opened" in (camera["reason"] or "")


async def test_phone_digits_decide_offline_limits_decline_and_removal_erases_the_template(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    clock: ManualClock,
    tmp_path: Path,
    models_cache: Path,
    face_models: Any,
    grace: ShopperPhoto,
    camera: tuple[MjpegCameraSimulator, SimulatedShopper],
) -> None:
    simulator, shopper = camera
    app = await started(
        start_app,
        site,
        clock,
        tmp_path,
        models_cache,
        simulator.url,
        # A gallery "too large" for 1:N alone, and an offline limit below any basket.
        decision={"phone_digits_above": 0},
        offline={"per_payment": 1},
    )
    await enroll(
        app,
        clock,
        "grace",
        template_of(face_models, grace.photo),
        phone_digits_hash=phone_digits_hash("grace", "1906"),
    )
    async with client(app) as http:
        check = await face_check(http, shopper)  # no digits given: stops at the question
        assert check["state"] == "needs_phone_digits", check
        r = await http.post(
            f"/api/v1/kiosk/face/checks/{check['id']}/digits",
            headers=KIOSK,
            json={"digits": "0000"},
        )
        assert r.json()["state"] == "needs_phone_digits" and r.json()["hint"] == "digits_mismatch"
        assert r.json()["digit_attempts_left"] == 2
        r = await http.post(
            f"/api/v1/kiosk/face/checks/{check['id']}/digits",
            headers=KIOSK,
            json={"digits": "1906"},
        )
        assert r.json()["state"] == "verified" and r.json()["method"] == "1:1", r.json()
        session = await buy_two_items(app, site, http, check["id"])
        # No broker configured: upstream is unreachable, the offline limit decides.
        declined = await payment(app, session, "declined")
        assert declined.data["mode"] == "offline"
        assert declined.data["reason"] == "over_offline_limit"
        assert declined.data["fallback"] == ["qr"]
        assert declined.data["verification"]["method"] == "1:1"

        sealed = await app.db.read(lambda s: s.get(Member, "grace"))
        assert sealed is not None
        ciphertext = bytes(sealed.template)
        outcome = await send(app, clock, "member.remove", {"member_id": "grace", "reason": "asked"})
        assert outcome.ok and outcome.result == {"member_id": "grace", "removed": True}
        await app.wait_checked()  # the WAL checkpoint after the removal
        r = await http.get("/api/v1/members/grace", headers=OPERATOR)
        assert r.status_code == 404
        assert app.facepay is not None and "grace" not in app.facepay.gallery
        # Verifiable: the sealed template's bytes are in no file of the database any more.
        database = app.config.database_path
        for path in (database, database.with_name(database.name + "-wal")):
            if path.exists():
                assert ciphertext not in path.read_bytes(), path
        # And the face no longer identifies anyone.
        check = await face_check(http, shopper)
        assert check["state"] == "failed" and check["reason"] == "not_recognised"
