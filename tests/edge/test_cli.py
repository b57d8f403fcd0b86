"""The ``edge`` command line (CONTRACT §1): help everywhere, one clear sentence per error."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from edge import __version__
from edge.cli import main

REPO = Path(__file__).resolve().parents[2]


def edge_process(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "edge.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def run_edge(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


class Lines:
    """A pipe read line by line in a thread, so a test can wait for a line with a deadline."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, fragment: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(f"{fragment!r} never came; output:\n{''.join(self.seen)}")
            self.seen.append(line)
            if fragment in line:
                return line

    def rest(self, timeout: float) -> str:
        while True:
            line = self._queue.get(timeout=timeout)
            if line is None:
                return "".join(self.seen)
            self.seen.append(line)


@pytest.fixture
def no_edge_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_CONFIG", raising=False)


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["run"],
        ["demo"],
        ["config"],
        ["config", "check"],
        ["db"],
        ["db", "upgrade"],
        ["bench"],
    ],
    ids=lambda c: " ".join(c) or "edge",
)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: edge")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"edge {__version__}"


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: edge" in capsys.readouterr().out


def test_unknown_command_or_benchmark_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["frobnicate"], ["bench", "nope"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("edge_config", [None, ""], ids=["unset", "empty"])
def test_run_without_config_is_one_clear_sentence(
    edge_config: str | None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if edge_config is None:
        monkeypatch.delenv("EDGE_CONFIG", raising=False)
    else:
        monkeypatch.setenv("EDGE_CONFIG", edge_config)
    assert main(["run"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == "edge run: give --config PATH (or set EDGE_CONFIG)"
    assert "Traceback" not in captured.err


BAD_CONFIG = """\
site: {id: "bad site!"}
code_secret: k
http: {port: -1}
"""


def test_run_with_an_invalid_config_lists_problems(
    tmp_path: Path, no_edge_config: None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_CONFIG, encoding="utf-8")
    assert main(["run", "--config", str(path)]) == 2
    captured = capsys.readouterr()
    assert f"{path}: invalid configuration (2 problems):" in captured.err
    assert "site.id (line 1):" in captured.err
    assert "http.port (line 3):" in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_run_takes_the_config_from_edge_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_CONFIG, encoding="utf-8")
    monkeypatch.setenv("EDGE_CONFIG", str(path))
    assert main(["run"]) == 2
    assert f"{path}: invalid configuration" in capsys.readouterr().err


def test_run_with_a_missing_config_file_as_a_process(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    done = run_edge("run", "--config", str(missing))
    assert done.returncode == 2
    assert f"{missing}: invalid configuration (1 problem):" in done.stderr
    assert "cannot read file: No such file or directory" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


@pytest.fixture
def site_config(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "edge.yaml"
    path.write_text(
        f"site: {{id: cli-site}}\ncode_secret: k\ndata_dir: {tmp_path / 'data'}\n"
        "http: {port: 0}\nlogging: {level: INFO, format: json}\n",
        encoding="utf-8",
    )
    yield path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_serves_until_signalled_then_stops_cleanly(
    site_config: Path, sig: signal.Signals
) -> None:
    process = edge_process("run", "--config", str(site_config))
    try:
        assert process.stderr is not None
        logs = Lines(process.stderr)
        started = json.loads(logs.wait_for('"controller started"', timeout=30))
        assert started["site"] == "cli-site"
        process.send_signal(sig)
        assert process.wait(timeout=30) == 0
        output = logs.rest(timeout=10)
    finally:
        process.kill()
        process.wait()
    assert '"controller stopped"' in output
    assert "Traceback" not in output
    assert (site_config.parent / "data" / "edge.db").exists()


def test_demo_walkthrough_completes(tmp_path: Path) -> None:
    done = run_edge(
        "demo", "--exit-after-walkthrough", "--port", "0", "--data-dir", str(tmp_path / "demo")
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "picked up" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_locker_bench_prints_json_last(tmp_path: Path) -> None:
    done = run_edge("bench", "locker", "--cycles", "20")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["bench"] == "locker"
    assert isinstance(report["machine"]["cpus"], int) and report["machine"]["cpus"] >= 1
    assert report["machine"]["python"].startswith(f"{sys.version_info.major}.")
    overhead = report["unlock_overhead_ms"]
    assert 0 < overhead["p50"] <= overhead["p99"]
    assert report["cycles_per_s"] > 0
    assert report["durable_tx_per_s"] > 0
