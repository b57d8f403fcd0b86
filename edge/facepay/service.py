"""Face payment at the site: models, cameras, the gallery, face checks and payment decisions.

Built once by the composition root from ``facepay`` in the configuration. Recognition runs in a
single worker thread, so a burst of checks queues instead of starving the event loop; a camera
or model that fails takes face payment down, never the rest of the site.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from drivers.camera import Camera, CameraSettings
from edge.clock import Clock
from edge.config.facepay import CameraConfig, FacePayConfig
from edge.config.models import CodeAttemptConfig
from edge.db import Database, Transaction
from edge.db.tables import FaceVerification
from edge.facepay.analysis import FaceAnalyser
from edge.facepay.checks import CheckState, FaceCheck, Terminal, VerifiedFace, WrongState
from edge.facepay.decision import Thresholds
from edge.facepay.gallery import Gallery
from edge.facepay.liveness import LivenessSettings, NirCalibration
from edge.facepay.members import MemberRegistry, digits_match
from edge.facepay.payments import LinkDownFor, PaymentDecider
from edge.facepay.quality import QualitySettings
from edge.facepay.templates import TemplateCipher
from edge.lockers.attempts import CodeAttemptLimiter
from models.faces import FaceModels, load_face_models
from models.prepare import prepare_models

log = logging.getLogger(__name__)

# Finished checks stay readable this long (the kiosk's last poll), then are forgotten.
FINISHED_CHECK_TTL_S = 60.0


class FacePayError(Exception):
    """A face-payment request the service refuses; ``code`` is stable for the kiosk."""

    status = 409

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        if status is not None:
            self.status = status


class FacePayService:
    def __init__(
        self,
        config: FacePayConfig,
        db: Database,
        clock: Clock,
        resolve: Callable[[Path], Path],
        link_down_for: LinkDownFor,
        *,
        models: FaceModels | None = None,
        rng: random.Random | None = None,
        code_attempts: CodeAttemptConfig | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self.clock = clock
        self.rng = rng or random.SystemRandom()
        self.cache_dir = resolve(config.models.cache_dir)
        self.cipher = TemplateCipher.from_key_file(resolve(config.template_key_file))
        self.models = models or self._load_models()
        recognizer = self.models.recognizer_spec
        self.model_name = recognizer.name
        defaults = recognizer.thresholds
        decision = config.decision
        self.thresholds = Thresholds(
            match=decision.match if decision.match is not None else defaults.match,
            margin=decision.margin if decision.margin is not None else defaults.margin,
            candidate=decision.candidate if decision.candidate is not None else defaults.candidate,
            phone_digits_above=decision.phone_digits_above,
        )
        self.gallery = Gallery(self.models.embedder.dim, threads=config.models.threads)
        self.members = MemberRegistry(
            db, self.cipher, self.gallery, self.model_name, self.models.embedder.dim, clock
        )
        self.analyser = FaceAnalyser(
            self.models.detector, self.models.embedder, QualitySettings(), self.models.spoof
        )
        self.liveness = LivenessSettings(
            step_timeout_s=config.liveness.step_timeout_s,
            min_reaction_s=config.liveness.min_reaction_s,
        )
        self.payments = PaymentDecider(config, db, clock, link_down_for)
        self.digit_limiter = CodeAttemptLimiter(code_attempts or CodeAttemptConfig())
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="face")
        self.camera_listener: Callable[[str, bool, str | None], None] | None = None
        """Told of every camera's availability changes (the device health table)."""
        self.terminals: dict[str, Terminal] = {
            t.id: Terminal(
                id=t.id,
                camera=self._camera(f"{t.id}/camera", t.camera),
                nir=self._camera(f"{t.id}/nir", t.nir_camera) if t.nir_camera else None,
                nir_calibration=NirCalibration(**t.nir_calibration.model_dump()),
            )
            for t in config.terminals
        }
        self.checks: dict[str, FaceCheck] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._finished_at: dict[str, float] = {}
        self.outcomes: Counter[str] = Counter()
        """Finished checks by outcome (``verified``, or the failure reason), for metrics."""
        self.last_frame_ms: list[float] = []

    def _load_models(self) -> FaceModels:
        chosen = self.config.models
        manifest = chosen.manifest()
        names = [chosen.detector, chosen.recognizer]
        if chosen.antispoof is not None:
            names.append(chosen.antispoof)
        # Idempotent and quick once cached; the first start prepares (a few seconds).
        prepare_models(self.cache_dir, [manifest.get(name) for name in names])
        return load_face_models(
            self.cache_dir,
            manifest,
            threads=chosen.threads,
            detector=chosen.detector,
            recognizer=chosen.recognizer,
            antispoof=chosen.antispoof,
        )

    # -- life cycle --------------------------------------------------------------------------

    def load(self) -> int:
        return self.members.load()

    def _camera(self, name: str, config: CameraConfig) -> Camera:
        def availability(up: bool, reason: str | None) -> None:
            if self.camera_listener is not None:
                self.camera_listener(name, up, reason)

        settings = CameraSettings(**config.model_dump())
        return Camera(name, settings, on_availability=availability)

    async def start(self) -> None:
        for terminal in self.terminals.values():
            await terminal.camera.start()
            if terminal.nir is not None:
                await terminal.nir.start()

    async def close(self) -> None:
        for check in list(self.checks.values()):
            check.cancel("shutdown")
        for task in list(self._tasks.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for terminal in self.terminals.values():
            await terminal.camera.stop()
            if terminal.nir is not None:
                await terminal.nir.stop()
        self.executor.shutdown(wait=True, cancel_futures=True)

    # -- face checks -------------------------------------------------------------------------

    def start_check(self, terminal_id: str) -> FaceCheck:
        terminal = self.terminals.get(terminal_id)
        if terminal is None:
            raise FacePayError(
                "no_face_terminal", f"Kiosk {terminal_id} has no face camera.", status=404
            )
        self._forget_finished()
        if not terminal.camera.available:
            raise FacePayError(
                "camera_unavailable",
                "Face payment is not available right now: the camera does not answer. "
                "Please pay with your member QR code.",
                status=503,
            )
        nir = terminal.nir
        if nir is not None and self.config.liveness.nir_required and not nir.available:
            raise FacePayError(
                "camera_unavailable",
                "Face payment is not available right now: the infrared camera does not answer. "
                "Please pay with your member QR code.",
                status=503,
            )
        for check in self.checks.values():
            if check.terminal.id == terminal_id and not check.finished:
                check.cancel("superseded")  # one shopper at a screen at a time
        check = FaceCheck(
            terminal,
            self.analyser,
            self.gallery,
            self.thresholds,
            self.config,
            self.liveness,
            self.executor,
            self.clock,
            self.rng,
            self._digits_match,
        )
        self.checks[check.id] = check
        task = asyncio.create_task(self._run(check), name=f"face-check:{check.id}")
        self._tasks[check.id] = task
        return check

    async def _run(self, check: FaceCheck) -> None:
        try:
            await check.run()
        finally:
            self._tasks.pop(check.id, None)
            self._finished_at[check.id] = self.clock.monotonic()
            self._count_outcome(check)  # a check waiting for digits is counted when they come
            self.last_frame_ms = check.frame_ms[-50:]

    def get_check(self, check_id: str, terminal_id: str) -> FaceCheck:
        check = self.checks.get(check_id)
        if check is None or check.terminal.id != terminal_id:
            raise FacePayError("unknown_check", "No such face check at this kiosk.", status=404)
        return check

    async def submit_digits(self, check_id: str, terminal_id: str, digits: str) -> FaceCheck:
        check = self.get_check(check_id, terminal_id)
        key = f"face-digits:{terminal_id}"
        now = self.clock.now()
        verdict = await self.db.read(lambda s: self.digit_limiter.check(s, key, now))
        if verdict.locked_for_s > 0:
            raise FacePayError(
                "digits_locked",
                f"Too many wrong digits. Try again in {int(verdict.locked_for_s) + 1} seconds.",
                status=429,
            )
        try:
            check.submit_digits(digits)
        except WrongState as exc:
            raise FacePayError("wrong_state", str(exc)) from exc
        if check.state is not CheckState.VERIFIED:
            await self.db.transact(
                lambda tx: self.digit_limiter.record_failure(tx.session, key, now)
            )
        self._count_outcome(check)
        return check

    def _count_outcome(self, check: FaceCheck) -> None:
        if check.finished:
            verified = check.state is CheckState.VERIFIED
            self.outcomes["verified" if verified else check.reason or "unknown"] += 1

    def _digits_match(self, member_id: str, digits: str) -> bool:
        stored = self.members.phone_hashes.get(member_id)
        return digits_match(member_id, digits, stored)

    def verified(self, check_id: str, terminal_id: str) -> tuple[VerifiedFace, Evidence]:
        """A verified check, to open a cabinet for its member. Not used up until ``consume``:
        a cabinet that cannot open leaves the shopper verified. The verification's row (written
        with the session) has the check's id as its key, so one check opens one session."""
        check = self.get_check(check_id, terminal_id)
        verified = check.verified
        if verified is None:
            raise FacePayError("not_verified", "This face check has not verified anyone.")
        if verified.expires_at < self.clock.monotonic():
            raise FacePayError("verification_expired", "Please look at the camera again.")
        if verified.member_id not in self.gallery:
            raise FacePayError("member_not_enrolled", "This member is no longer enrolled.")
        return verified, Evidence(verified, self.clock.now(), self.config.verification_ttl_s)

    def consume(self, check_id: str) -> None:
        check = self.checks.pop(check_id, None)
        if check is not None:
            check.verified = None

    def _forget_finished(self) -> None:
        now = self.clock.monotonic()
        for check_id, at in list(self._finished_at.items()):
            if now - at > FINISHED_CHECK_TTL_S:
                self._finished_at.pop(check_id, None)
                self.checks.pop(check_id, None)

    # -- payments ------------------------------------------------------------------------------

    async def decide_pending_payments(self) -> int:
        return await self.payments.decide_pending()

    def status(self) -> dict[str, Any]:
        return {
            "members": len(self.gallery),
            "model": self.model_name,
            "terminals": {
                t.id: {
                    "camera": t.camera.available,
                    "nir": None if t.nir is None else t.nir.available,
                }
                for t in self.terminals.values()
            },
            "upstream_unreachable": self.payments.upstream_unreachable(),
        }


class Evidence:
    """Writes the verification that opened a session inside that session's transaction."""

    def __init__(self, verified: VerifiedFace, now: datetime, ttl_s: float) -> None:
        self.verified = verified
        self.now = now
        self.ttl_s = ttl_s

    def __call__(self, tx: Transaction, session_id: str) -> None:
        v = self.verified
        tx.session.add(
            FaceVerification(
                id=v.id,
                terminal=v.terminal,
                member_id=v.member_id,
                method=v.method,
                score=v.score,
                second_score=v.second_score,
                liveness=v.liveness,
                verified_at=self.now.astimezone(UTC),
                expires_at=(self.now + timedelta(seconds=self.ttl_s)).astimezone(UTC),
                used_by=session_id,
            )
        )
