"""``edge keys generate``, and sending a signed command through a real broker to a dispatcher
(``send_command`` and ``edge command send``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import socket
import stat
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import pytest
import yaml

from edge.app import EdgeApp
from edge.cli import main
from edge.clock import ManualClock
from edge.commands.dispatcher import CommandDispatcher
from edge.commands.envelope import sign_command
from edge.commands.keys import (
    load_private_key,
    private_key_from_seed,
    private_key_pem,
    public_key_b64,
)
from edge.commands.send import find_result, send_command
from edge.commands.verify import CommandVerifier
from edge.config.sync import CommandsConfig, MqttConfig
from edge.db.tables import Compartment
from edge.lockers.commands import register_locker_commands
from edge.sync.topics import Topics

MOSQUITTO = Path("/usr/sbin/mosquitto")
KEY = private_key_from_seed(b"\x05" * 32)
SITE = "demo-site"  # the simulated site's id


# ---------------------------------------------------------------- edge keys generate


def test_keys_generate_writes_a_private_pem_and_its_public_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "upstream-2026.pem"
    assert main(["keys", "generate", "--out", str(path)]) == 0

    out = capsys.readouterr().out
    public_path = tmp_path / "upstream-2026.pem.pub"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    public = public_path.read_text().strip()
    assert public == public_key_b64(load_private_key(path))
    assert public in out.splitlines()
    # The printed snippet is a valid commands section that trusts this key.
    snippet = yaml.safe_load(out[out.index("commands:") :])
    config = CommandsConfig.model_validate(snippet["commands"])
    assert [(k.id, k.public_key) for k in config.trusted_keys] == [("upstream-2026", public)]
    assert CommandVerifier(config).key_ids == ["upstream-2026"]


def test_keys_generate_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "key.pem"
    assert main(["keys", "generate", "--out", str(path), "--id", "site-ops"]) == 0
    first = path.read_bytes(), (tmp_path / "key.pem.pub").read_bytes()
    capsys.readouterr()

    assert main(["keys", "generate", "--out", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"edge keys generate: {path} already exists; give --force to replace it"
    assert (path.read_bytes(), (tmp_path / "key.pem.pub").read_bytes()) == first

    path.chmod(0o644)
    assert main(["keys", "generate", "--out", str(path), "--force"]) == 0
    assert path.read_bytes() != first[0]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_keys_generate_refuses_when_only_the_public_file_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "key.pem.pub").write_text("someone else's\n")
    assert main(["keys", "generate", "--out", str(tmp_path / "key.pem")]) == 1
    assert "key.pem.pub already exists" in capsys.readouterr().err
    assert not (tmp_path / "key.pem").exists()


def test_keys_generate_into_a_missing_folder_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nowhere" / "key.pem"
    assert main(["keys", "generate", "--out", str(path)]) == 1
    assert capsys.readouterr().err == (
        f"edge keys generate: cannot write {path}: No such file or directory\n"
    )


@pytest.mark.parametrize(
    "command", [["keys"], ["keys", "generate"], ["command"], ["command", "send"]], ids=" ".join
)
def test_every_new_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: edge {' '.join(command)}")


def test_a_group_without_its_subcommand_shows_help_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["keys"]) == 2
    assert "generate" in capsys.readouterr().err


# ---------------------------------------------------------------- edge command send: arguments


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--data", "{}"], "give --config PATH, or --host HOST and --site SITE"),
        (["--data", "[1]", "--host", "h", "--site", "s"], "--data must hold a JSON object"),
        (["--data", "{x", "--host", "h", "--site", "s"], "--data is not valid JSON"),
        (["--data", "@/nonexistent", "--host", "h", "--site", "s"], "cannot read /nonexistent"),
        (["--data", "{}", "--host", "h", "--site", "s", "--ttl", "0"], "--ttl must be a positive"),
        (["--data", "{}", "--config", "c.yaml", "--host", "h"], "either --config or --host"),
    ],
)
def test_command_send_bad_arguments_exit_2_with_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    key = tmp_path / "key.pem"
    assert main(["keys", "generate", "--out", str(key)]) == 0
    capsys.readouterr()
    code = main(["command", "send", "--key", str(key), "--type", "compartment.disable", *arguments])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("edge command send: ") and err.count("\n") == 1
    assert message in err


def test_command_send_bad_key_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    not_a_key = tmp_path / "key.pem"
    not_a_key.write_text("hello")
    code = main(
        _cli("--key", str(not_a_key), "--type", "a.b", "--data", "{}", "--host", "h", "--site", "s")
    )
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"edge command send: {not_a_key} is not a PEM private key"
    )


def test_find_result_picks_the_commands_result_from_an_events_batch() -> None:
    batch = [
        {"type": "door.opened", "data": {"compartment": "A01"}},
        {"type": "command.result", "data": {"command_id": "other", "status": "ok"}},
        {"type": "command.result", "data": {"command_id": "ABC", "status": "rejected"}},
    ]
    assert find_result(json.dumps(batch).encode(), "abc") == batch[2]["data"]
    assert find_result(json.dumps(batch).encode(), "missing") is None
    assert find_result(b"\xff not json", "abc") is None


# ---------------------------------------------------------------- through a real broker


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def mqtt_port(tmp_path: Path) -> Iterator[int]:
    """A mosquitto of our own on a free loopback port (never 1883), stopped after the test."""
    if not MOSQUITTO.exists():
        pytest.skip("mosquitto is not installed")
    port = _free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    process = subprocess.Popen(
        [str(MOSQUITTO), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        while True:
            line = lines.get(timeout=10)
            assert line is not None, "mosquitto exited during start-up"
            if " running" in line:
                break
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
async def commands(app: EdgeApp, clock: ManualClock) -> CommandDispatcher:
    config = CommandsConfig.model_validate(
        {"trusted_keys": [{"id": "upstream-1", "public_key": public_key_b64(KEY)}]}
    )
    dispatcher = CommandDispatcher(CommandVerifier(config, clock), app.db, clock)
    register_locker_commands(dispatcher, app.lockers)
    return dispatcher


@contextlib.asynccontextmanager
async def site_link(
    port: int, app: EdgeApp, commands: CommandDispatcher, prefix: str = "edge/v1"
) -> AsyncIterator[list[bytes]]:
    """What the sync engine will do, reduced: hand each command to the dispatcher and publish
    the resulting ``command.result`` (in a batch with another event) to the events topic."""
    topics = Topics(prefix, SITE)
    received: list[bytes] = []
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def serve() -> None:
        async with aiomqtt.Client("127.0.0.1", port, identifier="site-link") as client:
            await client.subscribe(topics.commands, qos=1)
            ready.set_result(None)
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                received.append(message.payload)
                outcome = await commands.handle(message.payload)
                result = next(
                    e
                    for e in app.events.of_type("command.result")  # type: ignore[attr-defined]
                    if e.data["command_id"] == outcome.command_id
                )
                batch = [{"type": "door.opened", "data": {}}, result.as_dict()]
                await client.publish(topics.events, json.dumps(batch), qos=1)

    task = asyncio.create_task(serve())
    await asyncio.wait_for(asyncio.wait([task, ready], return_when="FIRST_COMPLETED"), 10)
    if task.done():
        task.result()  # raises why the link could not start
    try:
        yield received
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_send_command_reaches_the_dispatcher_and_returns_its_result(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock, mqtt_port: int
) -> None:
    mqtt = MqttConfig(host="127.0.0.1", port=mqtt_port)
    envelope = sign_command(
        KEY,
        "compartment.disable",
        {"compartment_id": "A05", "reason": "glass cracked"},
        ttl_s=300,
        issued_at=clock.now(),
    )
    async with site_link(mqtt_port, app, commands) as received:
        result = await send_command(mqtt, SITE, envelope, wait_s=10)

    assert result is not None
    assert (result["command_id"], result["status"]) == (envelope["id"], "ok")
    assert json.loads(received[0]) == envelope
    comp = await app.db.read(lambda s: s.get(Compartment, "A05"))
    assert comp is not None and comp.state == "disabled"


async def test_send_command_without_an_answer_returns_none(
    mqtt_port: int, clock: ManualClock
) -> None:
    envelope = sign_command(KEY, "compartment.disable", {}, ttl_s=60, issued_at=clock.now())
    mqtt = MqttConfig(host="127.0.0.1", port=mqtt_port)
    assert await send_command(mqtt, SITE, envelope, wait_s=0.3) is None
    assert await send_command(mqtt, SITE, envelope, wait_s=0) is None


def _cli(*arguments: str) -> list[str]:
    return ["command", "send", *arguments]


async def test_edge_command_send_end_to_end(
    app: EdgeApp,
    commands: CommandDispatcher,
    clock: ManualClock,
    mqtt_port: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clock.advance((datetime.now(UTC) - clock.now()).total_seconds())  # the CLI signs with "now"
    key = tmp_path / "upstream.pem"
    key.write_bytes(private_key_pem(KEY))  # the key the site trusts
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"compartment_id": "A06", "reason": "Wartung"}))
    broker = ["--host", "127.0.0.1", "--port", str(mqtt_port), "--site", SITE, "--wait", "10"]
    disable = ["--type", "compartment.disable", "--data", f"@{data}", "--kid", "upstream-1"]
    paint = ["--type", "compartment.paint", "--data", "{}"]

    async with site_link(mqtt_port, app, commands):
        ok = await asyncio.to_thread(main, _cli("--key", str(key), *disable, *broker))
        ok_out = capsys.readouterr().out.splitlines()
        rejected = await asyncio.to_thread(main, _cli("--key", str(key), *paint, *broker))
        rejected_out = capsys.readouterr().out.splitlines()

    assert ok == 0
    command_id, result = ok_out[0], json.loads(ok_out[1])
    assert result["command_id"] == command_id
    assert (result["status"], result["key_id"]) == ("ok", "upstream-1")
    comp = await app.db.read(lambda s: s.get(Compartment, "A06"))
    assert comp is not None and comp.state == "disabled"

    assert rejected == 1
    assert json.loads(rejected_out[1])["error"]["code"] == "unknown_type"


async def test_edge_command_send_with_a_config_and_no_answer_exits_3(
    mqtt_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "upstream.pem"
    key.write_bytes(private_key_pem(KEY))
    config = tmp_path / "edge.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "site": {"id": "north-1"},
                "code_secret": "x" * 16,
                "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "topic_prefix": "test/v1"},
            }
        )
    )
    # Listen where the command should go: the config's prefix and site.
    async with aiomqtt.Client("127.0.0.1", mqtt_port, identifier="listener") as listener:
        await listener.subscribe("test/v1/north-1/commands", qos=1)
        revoke = ["--type", "courier.revoke", "--data", '{"id": "c-1"}']
        code = await asyncio.to_thread(
            main, _cli("--key", str(key), *revoke, "--config", str(config), "--wait", "0.3")
        )
        async with asyncio.timeout(10):
            message = await anext(aiter(listener.messages))
    captured = capsys.readouterr()
    assert code == 3
    command_id = captured.out.strip()
    assert captured.err.strip() == (
        f"edge command send: no command.result for {command_id} within 0.3 s"
    )
    assert isinstance(message.payload, bytes)
    assert json.loads(message.payload)["id"] == command_id


def test_edge_command_send_to_no_broker_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "upstream.pem"
    key.write_bytes(private_key_pem(KEY))
    port = _free_port()  # nothing listens there
    broker = ["--host", "127.0.0.1", "--port", str(port), "--site", "s"]
    code = main(_cli("--key", str(key), "--type", "a.b", "--data", "{}", *broker))
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"edge command send: could not send to the broker at 127.0.0.1:{port}")
    assert err.count("\n") == 1
