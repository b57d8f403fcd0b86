"""``edge demo``'s face payment: the walkthrough ends with a face payment that upstream receives,
and without the shopper's photo the demo says why in one line and runs everything else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.demo.facepay import MEMBER_ID
from edge.demo.run import running_demo

REPO = Path(__file__).resolve().parents[2]


async def test_the_walkthrough_ends_with_a_face_payment_received_upstream(
    tmp_path: Path, mosquitto: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_demo(tmp_path / "demo", port=0) as demo:
        assert demo.face is not None, capsys.readouterr().out  # says why it was skipped
        assert demo.app.facepay is not None
        await demo.walk()
        received = list(demo.upstream.received)
    out = capsys.readouterr().out

    enrolled = [e for e in received if e["type"] == "member.enrolled"]
    assert [e["data"]["member_id"] for e in enrolled] == [MEMBER_ID]
    paid = [e for e in received if e["type"] == "payment.authorized"]
    assert len(paid) == 1, [e["type"] for e in received]
    payment = paid[0]["data"]
    assert payment["member_id"] == MEMBER_ID and payment["method"] == "face"
    assert payment["mode"] == "online"  # the demo's broker is up: decided on the device, online
    orders = {e["data"]["order_id"]: e["data"] for e in received if e["type"] == "order.created"}
    assert payment["amount"] == orders[payment["order_id"]]["total"] > 0
    assert len(payment["verification"]["liveness"]["challenge"]) == 2
    # The QR purchase before it is still a separate order, not paid by face.
    assert len(orders) == 2
    # The story is told step by step, ending with what upstream received.
    assert "Face payment skipped" not in out
    assert "verified   member-1002" in out
    assert out.rstrip().endswith("upstream   payment.authorized received")


def test_without_the_photo_the_demo_skips_face_payment_and_runs_the_rest(tmp_path: Path) -> None:
    # No photo cached, and pip finds no index: what a site without network to PyPI sees.
    empty_cache = tmp_path / "photo-cache"
    empty_cache.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}
    env.update(EDGE_PHOTO_CACHE=str(empty_cache), PIP_NO_INDEX="1", PIP_CONFIG_FILE=os.devnull)
    demo = ["demo", "--exit-after-walkthrough", "--port", "0", "--data-dir", str(tmp_path / "demo")]
    done = subprocess.run(
        [sys.executable, "-m", "edge.cli", *demo],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=REPO,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    skipped = [line for line in done.stdout.splitlines() if "Face payment skipped" in line]
    assert len(skipped) == 1, done.stdout
    assert "the shopper's photo is unavailable" in skipped[0]
    assert "matplotlib==3.11.2" in skipped[0]  # says which download failed
    # Everything else ran: the locker pickup and the purchase by member QR code.
    assert "picked up" in done.stdout
    assert "payment request pending" in done.stdout
    assert "member.enroll" not in done.stdout and "face check" not in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert not list(empty_cache.rglob("*.jpg"))  # nothing was fetched after all
