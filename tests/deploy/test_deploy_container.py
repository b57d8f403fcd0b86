"""deploy/Containerfile, deploy/compose.yaml and .dockerignore (no engine here to build with)."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import yaml

from edge.app import FLUSH_GRACE_S, SHUTDOWN_GRACE_S
from edge.cli import build_parser
from edge.config.models import HttpConfig
from tests.deploy.debian_list import debian_packages

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "deploy" / "Containerfile"
COMPOSE = ROOT / "deploy" / "compose.yaml"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    result, logical = [], ""
    for raw in CONTAINERFILE.read_text(encoding="utf-8").splitlines():
        if raw.lstrip().startswith("#") or (not raw.strip() and not logical):
            continue
        if raw.rstrip().endswith("\\"):
            logical += raw.rstrip()[:-1] + " "
            continue
        line, logical = (logical + raw).strip(), ""
        name, _, arguments = line.partition(" ")
        result.append((name.upper(), arguments.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    split: list[list[tuple[str, str]]] = []
    for name, arguments in instructions():
        if name == "FROM":
            split.append([])
        if split:
            split[-1].append((name, arguments))
    return split


def dockerignore_excludes(relative: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if pattern.startswith("**/"):
            hit = any(fnmatch(part, pattern[3:]) for part in parts)
        else:
            hit = any(fnmatch(candidate, pattern) for candidate in candidates)
        if hit:
            excluded = not negate
    return excluded


def test_the_image_runs_as_a_non_root_user() -> None:
    users = [arguments for name, arguments in stages()[-1] if name == "USER"]
    assert users, "the final stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0", ""}
    assert user == "10001"
    useradd = next(a for n, a in stages()[-1] if n == "RUN" and "useradd" in a)
    assert "--uid 10001" in useradd
    assert "--groups dialout,video" in useradd


def test_every_copied_file_exists_and_is_in_the_build_context() -> None:
    copies = [shlex.split(a) for n, a in instructions() if n == "COPY" and "--from=" not in a]
    assert copies
    for words in copies:
        *sources, _target = [w for w in words if not w.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
            assert not dockerignore_excludes(source), f"COPY {source}: excluded by .dockerignore"


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    for path in (".venv", "tests", "edge.db", "edge/__pycache__", "config", ".git"):
        assert dockerignore_excludes(path), path
    for path in ("pyproject.toml", "edge/app.py", "edge/web/kiosk/index.html", "models"):
        assert not dockerignore_excludes(path), path


def test_the_image_installs_only_listed_debian_packages() -> None:
    runtime = " ".join(a for n, a in stages()[-1] if n == "RUN")
    installed = re.search(
        r"apt-get install -y --no-install-recommends ([a-z0-9 .+-]+?) &&", runtime
    )
    assert installed is not None
    assert set(installed.group(1).split()) <= {package.name for package in debian_packages()}
    assert "fonts-wqy-microhei" in installed.group(1).split()  # the labels' Chinese text


def test_the_command_is_edge_run_and_the_stop_is_clean() -> None:
    final = dict(stages()[-1])
    command = yaml.safe_load(final["CMD"])  # the JSON form
    assert command[0] == "edge"
    assert build_parser().parse_args(command[1:]).handler.__name__ == "cmd_run"
    assert final["STOPSIGNAL"] == "SIGTERM"
    assert "/var/lib/edge" in final["VOLUME"]


def test_compose_maps_devices_groups_and_a_long_enough_stop() -> None:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    edge = compose["services"]["edge"]
    assert (COMPOSE.parent / edge["build"]["context"] / edge["build"]["dockerfile"]).samefile(
        CONTAINERFILE
    )
    assert edge["devices"], "serial ports, cameras and scanners are mapped"
    assert all(d.split(":")[0] == d.split(":")[1] for d in edge["devices"])  # same path inside
    assert {"dialout", "video"} <= set(edge["group_add"])
    assert "edge-state:/var/lib/edge" in edge["volumes"]
    assert "/etc/edge:/etc/edge:ro" in edge["volumes"]
    assert edge["cap_drop"] == ["ALL"]
    assert not edge.get("privileged", False)
    grace = int(edge["stop_grace_period"].removesuffix("s"))
    assert grace >= SHUTDOWN_GRACE_S + 2 * FLUSH_GRACE_S + 10


def healthcheck_command() -> list[str]:
    final = dict(stages()[-1])
    _options, _, command = final["HEALTHCHECK"].partition(" CMD ")
    words: list[str] = yaml.safe_load(command)
    return words


def test_the_healthcheck_asks_the_health_endpoint_on_the_default_port() -> None:
    python, flag, program = healthcheck_command()
    assert (python, flag) == ("python", "-c")
    assert f"http://127.0.0.1:{HttpConfig().port}/api/v1/health" in program
    assert '"/api/v1/health"' in (ROOT / "edge" / "api" / "app.py").read_text(encoding="utf-8")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run_healthcheck(port: int) -> int:
    _python, _flag, program = healthcheck_command()
    program = program.replace(f":{HttpConfig().port}/", f":{port}/")
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, timeout=30
    ).returncode


def test_the_healthcheck_fails_without_and_passes_with_a_ready_controller(tmp_path: Path) -> None:
    port = free_port()
    assert run_healthcheck(port) != 0  # nothing listens: unhealthy
    config = tmp_path / "edge.yaml"
    config.write_text(
        f"site: {{id: container-site}}\ncode_secret: k\ndata_dir: {tmp_path / 'data'}\n"
        f"http: {{port: {port}}}\nlogging: {{level: INFO, format: json}}\n",
        encoding="utf-8",
    )
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(60)
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")}
    env.pop("WATCHDOG_USEC", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env=env,
    )
    try:
        while b"READY=1" not in notify.recv(4096).split(b"\n"):
            pass  # STATUS=starting... first; recv raises TimeoutError after 60 s
        assert run_healthcheck(port) == 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()
        notify.close()
