"""A power cut between unlock and close: ``edge run`` killed with SIGKILL, then started again.

The controller runs as a real process (``python -m edge.cli run --config FILE``) and speaks the
real protocols over pseudo-terminals to simulators served by this test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from edge.config import load_config
from edge.config.models import EdgeConfig
from edge.demo.site import (
    COURIER_CREDENTIAL,
    COURIER_ID,
    KIOSK_TOKEN,
    OPERATOR_TOKEN,
    SimulatedSite,
)

REPO = Path(__file__).resolve().parents[2]
SECRET = "power-cut-test-secret"
KIOSK = {"X-Kiosk-Token": KIOSK_TOKEN}
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def config_document(config: EdgeConfig) -> dict[str, Any]:
    """The YAML document of a config, secrets included (a dump masks them as ``**********``)."""
    document = config.model_dump(mode="json", by_alias=True)
    document["code_secret"] = config.code_secret.get_secret_value()
    assert config.http.operator_token is not None
    document["http"]["operator_token"] = config.http.operator_token.get_secret_value()
    for kiosk, source in zip(document["kiosks"], config.kiosks, strict=True):
        kiosk["token"] = source.token.get_secret_value()
    for courier, given in zip(
        document["lockers"]["couriers"], config.lockers.couriers, strict=True
    ):
        courier["credential"] = given.credential.get_secret_value()
    return document


class EdgeProcess:
    """``edge run`` as a child process, with its log in a file."""

    def __init__(self, config_path: Path, log_path: Path, port: int) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.base_url = f"http://127.0.0.1:{port}"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "edge.cli",
                "run",
                "--config",
                str(self.config_path),
                cwd=REPO,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        await self.wait_ready()

    async def wait_ready(self, deadline_s: float = 30.0) -> None:
        assert self.proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deadline_s
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as http:
            while True:
                if self.proc.returncode is not None:
                    pytest.fail(f"edge run exited with {self.proc.returncode}:\n{self.log()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/api/v1/health")).status_code == 200:
                        return
                if loop.time() > deadline:
                    pytest.fail(f"edge run not ready after {deadline_s}s:\n{self.log()}")
                await asyncio.sleep(0.1)  # polling a port that is not yet listening

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def terminate(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout):
            return await self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
async def edge_config(site: SimulatedSite, tmp_path: Path) -> Path:
    config = site.config(
        http_port=free_port(),
        code_secret=SECRET,
        logging={"level": "INFO", "format": "json"},
    )
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(config_document(config), sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
async def processes() -> AsyncIterator[list[EdgeProcess]]:
    started: list[EdgeProcess] = []
    yield started
    for process in started:
        if process.proc is not None and process.proc.returncode is None:
            await process.kill()


async def start_edge(processes: list[EdgeProcess], config_path: Path, n: int) -> EdgeProcess:
    config = load_config(config_path, environ={})
    process = EdgeProcess(config_path, config_path.parent / f"edge-{n}.log", config.http.port)
    processes.append(process)
    await process.start()
    return process


async def events(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    r = await http.get("/api/v1/events", headers=OPERATOR, params={"limit": 1000})
    r.raise_for_status()
    found: list[dict[str, Any]] = r.json()
    return found


async def boot_checked(http: httpx.AsyncClient, deadline_s: float = 10.0) -> list[dict[str, Any]]:
    """The outbox once both buses were checked (the check runs after the API is up)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    while True:
        found = await events(http)
        checks = [e for e in found if e["type"] in ("locker.boot_check", "locker.bus_check")]
        if {e["data"]["bus"] for e in checks} >= {"lockers", "freezer"}:
            return found
        assert loop.time() < deadline, f"no boot check within {deadline_s}s: {found}"
        await asyncio.sleep(0.05)  # another process: nothing to wait on but its outbox


def test_config_file_carries_real_secrets(edge_config: Path) -> None:
    text = edge_config.read_text()
    assert "**" not in text
    loaded = load_config(edge_config, environ={})
    assert loaded.code_secret.get_secret_value() == SECRET
    assert loaded.kiosks[0].token.get_secret_value() == KIOSK_TOKEN
    assert loaded.http.operator_token is not None
    assert loaded.http.operator_token.get_secret_value() == OPERATOR_TOKEN
    assert loaded.lockers.couriers[0].credential.get_secret_value() == COURIER_CREDENTIAL


async def test_power_cut_during_deposit_is_flagged_not_reopened(
    site: SimulatedSite, edge_config: Path, processes: list[EdgeProcess]
) -> None:
    assert site.boards is not None and site.frozen is not None
    first = await start_edge(processes, edge_config, 1)
    async with httpx.AsyncClient(base_url=first.base_url, timeout=15) as http:
        await boot_checked(http)
        r = await http.post(
            "/api/v1/kiosk/courier/sessions",
            headers=KIOSK,
            json={"courier_id": COURIER_ID, "credential": COURIER_CREDENTIAL},
        )
        assert r.status_code == 201, r.text
        courier = {**KIOSK, "X-Courier-Session": r.json()["token"]}
        r = await http.post(
            "/api/v1/kiosk/deposits", headers=courier, json={"parcel_code": "PKG-1", "size": "S"}
        )
        assert r.status_code == 201, r.text
        deposit = r.json()
        assert deposit["compartment"] == "A01"
        before = await events(http)
    assert site.boards.is_open(1, 1)
    assert [e["type"] for e in before if e["type"].startswith("door.")] == [
        "door.commanded",
        "door.opened",
    ]

    await first.kill()  # the power goes before the courier closes the door
    unlocks = (list(site.boards.unlock_log), list(site.frozen.unlock_log))
    assert unlocks == ([(1, 1)], [])
    site.close_door("A01")

    second = await start_edge(processes, edge_config, 2)
    async with httpx.AsyncClient(base_url=second.base_url, timeout=15) as http:
        after = await boot_checked(http)
        compartments = {
            c["id"]: c for c in (await http.get("/api/v1/compartments", headers=OPERATOR)).json()
        }
        parcels = (await http.get("/api/v1/parcels", headers=OPERATOR)).json()
        r = await http.get(f"/api/v1/kiosk/operations/{deposit['operation_id']}", headers=KIOSK)
        assert r.status_code == 200 and r.json()["state"] == "interrupted"
        assert r.json()["pickup_code"] is None

    a01 = compartments["A01"]
    assert (a01["state"], a01["fault"]) == ("faulted", "interrupted_deposit")
    assert a01["door_open"] is False  # the boot check read the closed door
    assert [(p["code"], p["state"]) for p in parcels] == [("PKG-1", "interrupted")]
    fault = [e for e in after if e["type"] == "compartment.fault"]
    assert len(fault) == 1
    assert fault[0]["data"]["compartment"] == "A01"
    assert fault[0]["data"]["reason"] == "interrupted_deposit"
    assert fault[0]["data"]["operation"] == deposit["operation_id"]
    assert fault[0]["data"]["parcel"] == parcels[0]["id"]

    # Nothing lost, nothing renumbered, no gap.
    assert after[: len(before)] == before
    assert [e["seq"] for e in after] == list(range(1, len(after) + 1))
    assert [e for e in after if e["type"] == "parcel.deposited"] == []
    # No door was unlocked by the restart.
    assert (list(site.boards.unlock_log), list(site.frozen.unlock_log)) == unlocks

    assert await second.terminate() == 0
    for line in second.log().splitlines():
        json.loads(line)  # logging.format json: one object per line


async def test_sigterm_stops_cleanly(
    site: SimulatedSite, edge_config: Path, processes: list[EdgeProcess]
) -> None:
    process = await start_edge(processes, edge_config, 1)
    assert await process.terminate() == 0
    messages = [json.loads(line).get("event") for line in process.log().splitlines()]
    assert "controller started" in messages and "controller stopped" in messages
    assert site.boards is not None and site.boards.unlock_log == []
