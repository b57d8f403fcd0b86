"""One face check at a terminal: who is in front of the camera, and are they really there.

The check follows the camera frame by frame: it waits for a good frontal face, identifies it
against the gallery, then prompts a random challenge (blink, turn left, turn right) and follows
it from landmarks. Identity is checked again on the frontal frames during the challenge, so a
face swapped in after identification is caught. With a NIR camera, the face must also appear
there; with an anti-spoofing model, it must look live to it. When the gallery cannot decide alone
the shopper types the last four digits of their phone.

A check ends ``verified`` (a member, scores and liveness evidence, usable once to open a
cabinet) or ``failed`` with a stable reason code. It keeps no frame: only scores and codes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any

import numpy as np

from drivers.camera import Camera, CameraTimeout
from edge.clock import Clock
from edge.config.facepay import FacePayConfig
from edge.facepay.analysis import FaceAnalyser, FrameAnalysis
from edge.facepay.decision import Decision, Outcome, Thresholds, decide, decide_with_digits
from edge.facepay.gallery import Gallery
from edge.facepay.liveness import (
    ActiveChallenge,
    FaceObservation,
    LivenessSettings,
    LivenessState,
    LivenessVerdict,
    NirCalibration,
    nir_confirms,
)

log = logging.getLogger(__name__)

# Frontal frames averaged before the first identification: one frame can be unlucky.
IDENTIFY_FRAMES = 3
# At most this many embeddings are kept as evidence (memory only, dropped with the check).
MAX_EMBEDDINGS = 8
# A NIR frame this much older than the colour frame does not show the same instant.
NIR_MAX_SKEW_S = 0.25
# NIR frames that must show the face before the check may pass.
NIR_CONFIRMATIONS = 2


class CheckState(StrEnum):
    LOOKING = "looking"
    CHALLENGE = "challenge"
    DIGITS = "needs_phone_digits"
    VERIFIED = "verified"
    FAILED = "failed"


@dataclass(frozen=True)
class VerifiedFace:
    """What a verified check hands to a cabinet session (and then to the payment)."""

    id: str
    terminal: str
    member_id: str
    method: str
    score: float
    second_score: float | None
    liveness: dict[str, Any]
    expires_at: float
    """Monotonic seconds."""


@dataclass
class Terminal:
    id: str
    camera: Camera
    nir: Camera | None = None
    nir_calibration: NirCalibration = field(default_factory=NirCalibration)


class FaceCheck:
    def __init__(
        self,
        terminal: Terminal,
        analyser: FaceAnalyser,
        gallery: Gallery,
        thresholds: Thresholds,
        config: FacePayConfig,
        liveness: LivenessSettings,
        executor: Executor,
        clock: Clock,
        rng: random.Random,
        digits_match: Callable[[str, str], bool],
    ) -> None:
        self.id = str(uuid.uuid4())
        self.terminal = terminal
        self.analyser = analyser
        self.gallery = gallery
        self.thresholds = thresholds
        self.config = config
        self.liveness = liveness
        self.executor = executor
        self.clock = clock
        self.rng = rng
        self.digits_match = digits_match
        self.deadline = clock.monotonic() + config.verification_timeout_s
        self.state = CheckState.LOOKING
        self.reason: str | None = None
        self.prompt: str | None = None
        self.hint: str | None = None
        """Why the current frames are not good enough (``too_dark``…), for the screen."""
        self.decision: Decision | None = None
        self.verified: VerifiedFace | None = None
        self.digit_attempts_left = config.decision.digit_attempts
        self.changed = asyncio.Event()
        self._embeddings: list[np.ndarray] = []
        self._live_scores: list[float] = []
        self._nir_seen = 0
        self._nir_checked = 0
        self._challenge: ActiveChallenge | None = None
        self._last_embed_at = 0.0
        self._liveness: dict[str, Any] = {}
        self.frame_ms: list[float] = []

    # -- the view the kiosk polls ------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "terminal": self.terminal.id,
            "state": self.state.value,
            "prompt": self.prompt,
            "hint": self.hint,
            "reason": self.reason,
        }
        if self.state is CheckState.DIGITS:
            out["digit_attempts_left"] = self.digit_attempts_left
        if self.verified is not None:
            out["member_id"] = self.verified.member_id
            out["method"] = self.verified.method
            out["score"] = round(self.verified.score, 4)
        return out

    @property
    def finished(self) -> bool:
        return self.state in (CheckState.VERIFIED, CheckState.FAILED)

    # -- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._follow_camera()
        except asyncio.CancelledError:
            if not self.finished:
                self._fail("cancelled")
            raise
        except Exception:
            log.exception("face check crashed", extra={"check": self.id})
            self._fail("internal_error")

    async def _follow_camera(self) -> None:
        loop = asyncio.get_running_loop()
        camera = self.terminal.camera
        seq = 0
        while self.state in (CheckState.LOOKING, CheckState.CHALLENGE):
            remaining = self.deadline - self.clock.monotonic()
            if remaining <= 0:
                self._fail("timeout" if self._challenge is None else "challenge_timeout")
                return
            try:
                frame = await camera.next_frame(seq, timeout=min(1.0, remaining))
            except CameraTimeout:
                if not camera.available:
                    self._fail("camera_unavailable")
                    return
                continue
            seq = frame.seq
            analysis = await loop.run_in_executor(
                self.executor,
                partial(
                    self.analyser.analyse,
                    frame.image,
                    embed=self._wants_embedding(frame.captured_at),
                ),
            )
            self.frame_ms.append(sum(analysis.stage_ms.values()))
            if analysis.embedding is not None:
                self._last_embed_at = frame.captured_at
            await self._step(analysis, frame.captured_at)

    def _wants_embedding(self, at: float) -> bool:
        if self._challenge is None:
            return True
        # During the challenge: identity re-checks a few times a second, not on every frame.
        return len(self._embeddings) < MAX_EMBEDDINGS and at - self._last_embed_at >= 0.3

    async def _step(self, analysis: FrameAnalysis, at: float) -> None:
        face = analysis.face
        self.hint = None
        if face is None:
            self.hint = "no_face"
            if self._challenge is not None:
                await self._judge(self._challenge.missing(at))
            return
        if analysis.quality is not None and not analysis.quality.passed:
            self.hint = analysis.quality.reasons[0]
        if analysis.embedding is not None:
            if not self._same_person(analysis.embedding):
                self._fail("face_changed")
                return
            self._embeddings.append(analysis.embedding)
            if analysis.live_probability is not None:
                self._live_scores.append(analysis.live_probability)
        if self._challenge is None:
            if len(self._embeddings) >= IDENTIFY_FRAMES:
                await self._identify_then_challenge()
            return
        if self.terminal.nir is not None and self._nir_seen < NIR_CONFIRMATIONS:
            await self._check_nir(face.box, at)
        assert analysis.aligned is not None
        verdict = self._challenge.observe(
            FaceObservation(at=at, box=face.box, landmarks=face.landmarks, aligned=analysis.aligned)
        )
        await self._judge(verdict)

    def _same_person(self, embedding: np.ndarray) -> bool:
        if not self._embeddings:
            return True
        reference = _mean(self._embeddings)
        return float(reference @ embedding) >= self.thresholds.candidate

    async def _identify(self) -> Decision:
        """Search the gallery with the mean of the embeddings so far, in the worker thread (a
        large gallery takes milliseconds: not on the event loop)."""
        probe = _mean(self._embeddings)
        result = await asyncio.get_running_loop().run_in_executor(
            self.executor, partial(self.gallery.search, probe, k=8, floor=0.0)
        )
        self.decision = decide(result, self.thresholds)
        return self.decision

    async def _identify_then_challenge(self) -> None:
        decision = await self._identify()
        if decision.outcome is Outcome.NO_MATCH:
            self._fail("not_recognised")
            return
        self._challenge = ActiveChallenge.random(
            self.rng, steps=self.config.liveness.steps, settings=self.liveness
        )
        self.state = CheckState.CHALLENGE
        self.prompt = _prompt(self._challenge)
        self._changed()

    async def _judge(self, verdict: LivenessVerdict) -> None:
        assert self._challenge is not None
        if verdict.state is LivenessState.FAILED:
            self._fail(str(verdict.reason or "liveness_failed"))
            return
        prompt = _prompt(self._challenge)
        if prompt != self.prompt:
            self.prompt = prompt
            self._changed()
        if verdict.state is LivenessState.PASSED:
            await self._challenge_passed(verdict)

    async def _check_nir(self, box: tuple[float, float, float, float], at: float) -> None:
        nir = self.terminal.nir
        assert nir is not None
        frame = nir.latest()
        if frame is None or abs(frame.captured_at - at) > NIR_MAX_SKEW_S:
            return
        loop = asyncio.get_running_loop()
        faces = await loop.run_in_executor(self.executor, self.analyser.detect, frame.image)
        self._nir_checked += 1
        verdict = nir_confirms(
            box,
            [(f.box, f.score) for f in faces],
            calibration=self.terminal.nir_calibration,
        )
        if verdict.confirmed:
            self._nir_seen += 1

    async def _challenge_passed(self, verdict: LivenessVerdict) -> None:
        assert self._challenge is not None
        liveness: dict[str, Any] = {
            "challenge": [str(step) for step in self._challenge.steps],
            "reaction_s": [
                round(t.reaction_s, 3) if t.reaction_s is not None else None
                for t in verdict.timings
            ],
        }
        if self.terminal.nir is not None:
            liveness["nir"] = {"checked": self._nir_checked, "seen": self._nir_seen}
            if self._nir_checked == 0:
                if self.config.liveness.nir_required:
                    self._fail("nir_unavailable")
                    return
                liveness["nir"]["skipped"] = True
            elif self._nir_seen < NIR_CONFIRMATIONS:
                self._fail("nir_no_face")  # a screen shows nothing in near infrared
                return
        if self.analyser.spoof is not None:
            live = float(np.mean(self._live_scores)) if self._live_scores else 0.0
            liveness["antispoof"] = round(live, 4)
            # The operator's setting, else the threshold the model's own spec names.
            threshold = self.config.liveness.antispoof_threshold
            if threshold is None:
                threshold = self.analyser.spoof.spec.thresholds.live
            if live < threshold:
                self._fail("spoof_suspected")
                return
        self._liveness = liveness
        # Identify again, on all the evidence gathered: more frames, a surer decision.
        decision = await self._identify()
        if decision.outcome is Outcome.MATCH:
            assert decision.member_id is not None and decision.score is not None
            self._verify(decision)
        elif decision.outcome is Outcome.NEEDS_DIGITS:
            self.state = CheckState.DIGITS
            self.prompt = "phone_digits"
            self._changed()
        else:
            self._fail("not_recognised")

    def submit_digits(self, digits: str) -> None:
        """The shopper typed four digits: decide 1:1 among the candidates they select."""
        if self.state is not CheckState.DIGITS or self.decision is None:
            raise WrongState(f"This face check is {self.state.value}, not waiting for digits.")
        decision = decide_with_digits(
            self.decision.candidates,
            lambda member: self.digits_match(member, digits),
            self.thresholds,
        )
        if decision.outcome is Outcome.MATCH:
            self._verify(decision)
            return
        if decision.outcome is Outcome.AMBIGUOUS:
            self._fail("ambiguous")
            return
        self.digit_attempts_left -= 1
        if self.digit_attempts_left <= 0:
            self._fail("digits_mismatch")
        else:
            self.hint = "digits_mismatch"
            self._changed()

    def _verify(self, decision: Decision) -> None:
        assert decision.member_id is not None and decision.score is not None
        self.verified = VerifiedFace(
            id=self.id,
            terminal=self.terminal.id,
            member_id=decision.member_id,
            method=decision.method,
            score=decision.score,
            second_score=decision.second_score,
            liveness=self._liveness,
            expires_at=self.clock.monotonic() + self.config.verification_ttl_s,
        )
        self.state = CheckState.VERIFIED
        self.prompt = None
        self._embeddings.clear()
        log.info(
            "face verified",
            extra={
                "check": self.id,
                "terminal": self.terminal.id,
                "member": decision.member_id,
                "method": decision.method,
                "score": round(decision.score, 4),
            },
        )
        self._changed()

    def _fail(self, reason: str) -> None:
        if self.finished:
            return
        self.state = CheckState.FAILED
        self.reason = reason
        self.prompt = None
        self._embeddings.clear()
        log.info(
            "face check failed",
            extra={"check": self.id, "terminal": self.terminal.id, "reason": reason},
        )
        self._changed()

    def cancel(self, reason: str) -> None:
        self._fail(reason)

    def _changed(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class WrongState(Exception):
    pass


def _prompt(challenge: ActiveChallenge) -> str | None:
    prompt = challenge.prompt
    return None if prompt is None else str(prompt)


def _mean(embeddings: list[np.ndarray]) -> np.ndarray:
    mean: np.ndarray = np.mean(np.stack(embeddings), axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else mean
