"""The configuration file: schema, cross-checks, ``EDGE_...`` overrides, secrets, ``config check``.

Every invalid case asserts the YAML path of the problem (and its line where it came from the
file), since that is what lets an installer fix a whole file in one pass.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.cli import main
from edge.commands.keys import generate_private_key, public_key_b64
from edge.config import ConfigError, EdgeConfig, Problem, Zone, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]

VALID = """\
site:
  id: test-site
  name: Test site
data_dir: /srv/edge-test
database:
  path: state/edge.db
logging:
  level: WARNING
  format: json
http:
  host: 127.0.0.1
  port: 8080
  operator_token: operator-secret
code_secret: code-secret
kiosks:
  - id: kiosk-1
    token: kiosk-secret
lockboards:
  - name: main
    port: /dev/edge-locks0
    protocol: 485-board
    baudrate: 9600
    boards:
      - {address: 1, locks: 12}
      - {address: 2, locks: 6}
    query_all_closed_bit: 0
  - name: freezer
    port: /dev/edge-locks1
    protocol: kerong
    boards:
      - {address: 0, locks: 4}
temperature_sensors:
  - name: chiller
    port: /dev/edge-modbus0
    device_id: 1
    zone: chilled
    parity: E
    stopbits: 2
    register: {address: 3, table: input, data_type: float32, scale: 1.0, word_order: little}
  - name: freezer-probe
    port: /dev/edge-modbus0
    device_id: 2
    zone: frozen
    register: {address: 0}
    compartments: [F01]
lockers:
  sizes: [S, M, L]
  zones:
    ambient: {expiry_hours: 72}
    chilled: {min_c: 0, max_c: 4, grace_s: 300, expiry_hours: 24}
    frozen: {min_c: -25, max_c: -15}
  compartments:
    - {id: A01, bus: main, board: 1, lock: 1, size: S}
    - {id: A02, bus: main, board: 1, lock: 12, size: L}
    - {id: C01, bus: main, board: 2, lock: 1, size: M, zone: chilled}
    - {id: F01, bus: freezer, board: 0, lock: 4, size: M, zone: frozen, enabled: false}
  couriers:
    - {id: courier-1, name: Courier, credential: "2468"}
  door_open_timeout_s: 7
  code_attempts: {max_failures: 3, window_s: 300}
rfid_readers:
  - name: shelf
    protocol: r2000
    port: /dev/edge-rfid0
    antennas: [1, 2, 3]
  - name: portal
    protocol: llrp
    host: 192.168.1.20
cabinets:
  - id: K1
    reader: shelf
    antennas: [1, 2]
    door: {bus: main, board: 2, lock: 6}
  - id: K2
    reader: shelf
    antennas: [3]
    door: {bus: main, board: 2, lock: 5}
    presence: {k: 1, m: 4}
"""

NO_ENV: Mapping[str, str] = {}


def line_of(text: str, fragment: str, occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th line containing ``fragment``."""
    hits = [n for n, line in enumerate(text.splitlines(), 1) if fragment in line]
    assert len(hits) >= occurrence, f"{fragment!r} not in the text"
    return hits[occurrence - 1]


def problems_of(text: str, environ: Mapping[str, str] = NO_ENV) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "test.yaml", environ)
    assert caught.value.problems, "a ConfigError always says why"
    return caught.value.problems


def by_path(problems: list[Problem]) -> dict[str, Problem]:
    return {p.path: p for p in problems}


def mutated(change: Any) -> str:
    """VALID with ``change(document)`` applied, dumped back to YAML."""
    document = yaml.safe_load(VALID)
    change(document)
    return yaml.safe_dump(document, sort_keys=False)


def write(tmp_path: Path, text: str, name: str = "edge.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- a valid file ------------------------------------------------------------------------------


def test_full_valid_config_parses_every_section() -> None:
    config = parse_config(VALID, "test.yaml", NO_ENV)

    assert config.site.id == "test-site"
    assert config.database_path == Path("/srv/edge-test/state/edge.db")
    assert (config.logging.level, config.logging.format) == ("WARNING", "json")
    assert config.http.operator_token is not None
    assert config.http.operator_token.get_secret_value() == "operator-secret"
    assert config.code_secret.get_secret_value() == "code-secret"
    assert config.kiosks[0].token.get_secret_value() == "kiosk-secret"
    main_bus, freezer = config.lockboards
    assert (main_bus.protocol, main_bus.baudrate, main_bus.query_all_closed_bit) == (
        "485-board",
        9600,
        0,
    )
    assert [(b.address, b.locks) for b in main_bus.boards] == [(1, 12), (2, 6)]
    assert (freezer.protocol, freezer.baudrate, freezer.query_all_closed_bit) == ("kerong", None, 1)
    chiller, probe = config.temperature_sensors
    assert (chiller.parity, chiller.stopbits, chiller.device_id) == ("E", 2, 1)
    assert chiller.register_map.table == "input"
    assert chiller.register_map.data_type == "float32"
    assert chiller.register_map.word_order == "little"
    assert probe.register_map.scale == 0.1  # the default
    assert probe.compartments == ["F01"]
    assert config.lockers.zones[Zone.CHILLED].grace_s == 300
    assert config.lockers.zones[Zone.FROZEN].min_c == -25
    assert [c.id for c in config.lockers.compartments] == ["A01", "A02", "C01", "F01"]
    assert config.lockers.compartments[3].enabled is False
    assert config.lockers.couriers[0].credential.get_secret_value() == "2468"
    assert config.lockers.door_open_timeout_s == 7
    assert config.lockers.code_attempts.max_failures == 3
    assert config.lockers.code_attempts.lockout_s == 60  # the default


def test_secrets_do_not_show_in_the_config_repr() -> None:
    config = parse_config(VALID, "test.yaml", NO_ENV)
    shown = repr(config) + str(config)
    for secret in ("operator-secret", "code-secret", "kiosk-secret", "2468"):
        assert secret not in shown


def test_minimal_config_takes_defaults() -> None:
    config = parse_config("site: {id: s1}\ncode_secret: k\n", "min.yaml", NO_ENV)
    assert config.http.host == "127.0.0.1" and config.http.port == 8080
    assert config.database_path == Path("/var/lib/edge/edge.db")
    assert config.lockers.sizes == ["S", "M", "L"]
    assert set(config.lockers.zones) == set(Zone)


def test_two_sensors_may_share_one_port() -> None:
    config = parse_config(VALID, "test.yaml", NO_ENV)
    assert config.temperature_sensors[0].port == config.temperature_sensors[1].port


# --- edge config check --------------------------------------------------------------------------


def test_config_check_says_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, VALID)
    assert main(["config", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "test-site" in out and "4 compartments" in out


def test_config_check_as_a_real_process(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    done = subprocess.run(
        [sys.executable, "-m", "edge.cli", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert "valid" in done.stdout

    bad = write(tmp_path, VALID.replace("protocol: kerong", "protocol: kerrong"), "bad.yaml")
    done = subprocess.run(
        [sys.executable, "-m", "edge.cli", "config", "check", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 2
    assert "lockboards[1].protocol" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


SEVERAL_PROBLEMS = """\
site:
  id: s1
code_secret: k
http:
  port: 70000
lockboards:
  - name: main
    port: ""
    protocol: 485-board
    boards: [{address: 1}]
lockers:
  door_open_timout_s: 5
  compartments:
    - {id: A01, bus: main, board: 1, lock: 1, size: S}
    - {id: A02, bus: main, board: 1, lock: 2, size: S}
    - id: A03
      board: 1
      lock: 3
      size: S
    - {id: A04, bus: main, board: 1, lock: 99, size: S}
"""


def test_every_problem_is_reported_with_its_path_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = SEVERAL_PROBLEMS
    found = by_path(problems_of(text))
    expected = {
        "http.port": line_of(text, "port: 70000"),
        "lockboards[0].port": line_of(text, 'port: ""'),
        "lockers.door_open_timout_s": line_of(text, "door_open_timout_s"),
        # A missing key has no line of its own: the problem points at its mapping.
        "lockers.compartments[2].bus": line_of(text, "- id: A03"),
        "lockers.compartments[3].lock": line_of(text, "lock: 99"),
    }
    assert set(found) == set(expected)
    for path, line in expected.items():
        assert found[path].line == line, (path, found[path])
        assert found[path].source is None
    assert "Field required" in found["lockers.compartments[2].bus"].message
    assert "Extra inputs are not permitted" in found["lockers.door_open_timout_s"].message

    file = write(tmp_path, text)
    assert main(["config", "check", str(file)]) == 2
    captured = capsys.readouterr()
    assert "5 problems" in captured.err
    for key, line in expected.items():
        assert f"{key} (line {line}):" in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_cross_check_problems_are_all_reported_at_once() -> None:
    def change(doc: dict[str, Any]) -> None:
        comps = doc["lockers"]["compartments"]
        comps[1]["id"] = "A01"
        comps[2]["bus"] = "nope"
        comps[3]["size"] = "XL"

    text = mutated(change)
    found = by_path(problems_of(text))
    assert set(found) == {
        "lockers.compartments[1].id",
        "lockers.compartments[2].bus",
        "lockers.compartments[3].size",
    }
    assert found["lockers.compartments[2].bus"].line == line_of(text, "bus: nope")
    assert found["lockers.compartments[3].size"].line == line_of(text, "size: XL")


def test_yaml_syntax_error_gives_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = VALID.replace("  port: 8080\n", "  port: [8080\n")
    (problem,) = problems_of(text)
    assert "not valid YAML" in problem.message
    assert problem.line is not None
    assert line_of(text, "port: [8080") <= problem.line <= line_of(text, "port: [8080") + 2

    path = write(tmp_path, text)
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"(line {problem.line})" in err and "not valid YAML" in err
    assert "Traceback" not in err


def test_a_key_given_twice_is_a_problem() -> None:
    text = VALID.replace("  port: 8080\n", "  port: 8080\n  port: 8081\n")
    (problem,) = problems_of(text)
    assert problem.path == "http.port"
    assert problem.line == line_of(text, "port: 8081")
    assert "twice" in problem.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- site\n", "must be a mapping"),
        ("just text\n", "must be a mapping"),
    ],
)
def test_the_file_must_be_a_mapping(text: str, message: str) -> None:
    (problem,) = problems_of(text)
    assert message in problem.message


def test_unknown_key_is_rejected_with_its_line() -> None:
    text = VALID.replace("  door_open_timeout_s: 7", "  door_open_timout_s: 7")
    (problem,) = problems_of(text)
    assert problem.path == "lockers.door_open_timout_s"
    assert problem.line == line_of(text, "door_open_timout_s")
    assert "Extra inputs are not permitted" in problem.message

    text = VALID.replace("    baudrate: 9600\n", "    baud: 9600\n")
    (problem,) = problems_of(text)
    assert problem.path == "lockboards[0].baud"


def test_missing_required_settings() -> None:
    text = "\n".join(
        line
        for line in VALID.splitlines()
        if not line.startswith(("code_secret", "site", "  id:", "  name: Test"))
    )
    found = by_path(problems_of(text))
    assert set(found) == {"site", "code_secret"}
    assert all("Field required" in p.message for p in found.values())

    found = by_path(problems_of(""))
    assert set(found) == {"site", "code_secret"}


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        pytest.param(
            lambda d: d["lockers"]["compartments"][1].update(bus="side"),
            "lockers.compartments[1].bus",
            "no lock bus named 'side'",
            id="unknown-bus",
        ),
        pytest.param(
            lambda d: d["lockers"]["compartments"][1].update(board=3),
            "lockers.compartments[1].board",
            "bus 'main' has no board with address 3",
            id="board-not-on-bus",
        ),
        pytest.param(
            lambda d: d["lockers"]["compartments"][2].update(lock=7),
            "lockers.compartments[2].lock",
            "board 2 on 'main' has only 6 locks",
            id="lock-beyond-board",
        ),
        pytest.param(
            lambda d: d["lockers"]["compartments"][2].update(id="A01"),
            "lockers.compartments[2].id",
            "compartment id 'A01' is used twice",
            id="duplicate-compartment-id",
        ),
        pytest.param(
            lambda d: d["lockers"]["compartments"][1].update(lock=1),
            "lockers.compartments[1].lock",
            "lock already used by compartment 'A01'",
            id="duplicate-lock",
        ),
        pytest.param(
            lambda d: d["lockers"]["compartments"][0].update(size="XL"),
            "lockers.compartments[0].size",
            "unknown size 'XL'; configured sizes: S, M, L",
            id="size-not-configured",
        ),
        pytest.param(
            lambda d: d["lockboards"][1].update(port="/dev/edge-locks0"),
            "lockboards[1].port",
            "port /dev/edge-locks0 is already used by lockboards[0]",
            id="two-buses-one-port",
        ),
        pytest.param(
            lambda d: d["temperature_sensors"][1].update(port="/dev/edge-locks1"),
            "temperature_sensors[1].port",
            "port /dev/edge-locks1 is already used by lockboards[1]",
            id="sensor-on-lock-bus-port",
        ),
        pytest.param(
            lambda d: d["temperature_sensors"][1].update(compartments=["F01", "F99"]),
            "temperature_sensors[1].compartments[1]",
            "no compartment 'F99'",
            id="sensor-unknown-compartment",
        ),
        pytest.param(
            lambda d: d["kiosks"].append({"id": "kiosk-1", "token": "t"}),
            "kiosks[1].id",
            "id 'kiosk-1' is used twice",
            id="duplicate-kiosk",
        ),
        pytest.param(
            lambda d: d["lockers"]["couriers"].append({"id": "courier-1", "credential": "1"}),
            "lockers.couriers[1].id",
            "id 'courier-1' is used twice",
            id="duplicate-courier",
        ),
        pytest.param(
            lambda d: d["lockboards"][1]["boards"][0].update(address=16),
            "lockboards[1]",
            "kerong boards have addresses 0..15",
            id="kerong-address-above-15",
        ),
        pytest.param(
            lambda d: d["lockboards"][1]["boards"][0].update(locks=17),
            "lockboards[1]",
            "at most 16 locks",
            id="kerong-more-than-16-locks",
        ),
        pytest.param(
            lambda d: d["lockboards"][0]["boards"][0].update(address=0),
            "lockboards[0]",
            "485-board addresses are 1..32",
            id="485-board-address-0",
        ),
        pytest.param(
            lambda d: d["lockboards"][0]["boards"][1].update(address=1),
            "lockboards[0]",
            "board address 1 appears twice on this bus",
            id="duplicate-board-address",
        ),
        pytest.param(
            lambda d: d["lockers"]["zones"]["chilled"].update(min_c=5),
            "lockers.zones.chilled",
            "min_c must not be above max_c",
            id="zone-band-inverted",
        ),
        pytest.param(
            lambda d: d["lockers"].update(sizes=["S", "M", "S"]),
            "lockers.sizes",
            "sizes must be unique",
            id="duplicate-size",
        ),
        pytest.param(
            lambda d: d["cabinets"][0].update(reader="nowhere"),
            "cabinets[0].reader",
            "no RFID reader named 'nowhere'",
            id="cabinet-unknown-reader",
        ),
        pytest.param(
            lambda d: d["cabinets"][0].update(antennas=[1, 4]),
            "cabinets[0].antennas[1]",
            "'shelf' has no antenna 4",
            id="cabinet-antenna-not-on-reader",
        ),
        pytest.param(
            lambda d: d["cabinets"][1].update(antennas=[2]),
            "cabinets[1].antennas[0]",
            "antenna 2 already watches 'K1'",
            id="two-cabinets-one-antenna",
        ),
        pytest.param(
            lambda d: d["cabinets"][0]["door"].update(lock=1),
            "cabinets[0].door.lock",
            "lock already used by 'C01'",
            id="cabinet-door-on-a-compartment-lock",
        ),
        pytest.param(
            lambda d: d["cabinets"][1].update(id="K1"),
            "cabinets[1].id",
            "id 'K1' is used twice",
            id="duplicate-cabinet",
        ),
        pytest.param(
            lambda d: d["rfid_readers"][0].update(port="/dev/edge-locks0"),
            "rfid_readers[0].port",
            "port /dev/edge-locks0 is already used by lockboards[0]",
            id="reader-on-lock-bus-port",
        ),
        pytest.param(
            lambda d: d["rfid_readers"][1].pop("host"),
            "rfid_readers[1]",
            "an llrp reader needs a host",
            id="llrp-without-host",
        ),
        pytest.param(
            lambda d: d["cabinets"][1].update(presence={"k": 5, "m": 4}),
            "cabinets[1].presence",
            "k must not be greater than m",
            id="presence-k-above-m",
        ),
        pytest.param(
            lambda d: d.update(
                facepay={
                    "template_key_file": "template.key",
                    "terminals": [{"id": "no-such-kiosk", "camera": {"uri": "/dev/video0"}}],
                }
            ),
            "facepay.terminals[0].id",
            "no kiosk with id 'no-such-kiosk'",
            id="face-terminal-not-a-kiosk",
        ),
        pytest.param(
            lambda d: d.update(
                facepay={
                    "template_key_file": "template.key",
                    "models": {"extra": [{"name": "mine", "role": "recognizer"}]},
                }
            ),
            "facepay.models.extra",
            "model spec is not valid",
            id="operator-model-spec-invalid",
        ),
        pytest.param(
            lambda d: d.update(
                facepay={
                    "template_key_file": "template.key",
                    "terminals": [
                        {"id": "kiosk-1", "camera": {"uri": "/dev/video0"}, "codes": ["qr", "qr2"]}
                    ],
                }
            ),
            "facepay.terminals[0].codes",
            "unknown code 'qr2'",
            id="face-camera-unknown-code",
        ),
        pytest.param(
            lambda d: d.update(
                scanners=[{"name": "s1", "kind": "serial", "kiosk": "kiosk-9", "port": "/dev/x"}]
            ),
            "scanners[0].kiosk",
            "no kiosk with id 'kiosk-9'",
            id="scanner-of-unknown-kiosk",
        ),
        pytest.param(
            lambda d: d.update(
                scanners=[
                    {"name": "s1", "kind": "serial", "kiosk": "kiosk-1", "port": "/dev/edge-locks0"}
                ]
            ),
            "scanners[0].port",
            "port /dev/edge-locks0 is already used by lockboards[0]",
            id="scanner-on-lock-bus-port",
        ),
        pytest.param(
            lambda d: d.update(
                scanners=[
                    {"name": "s1", "kind": "hid", "kiosk": "kiosk-1", "device": "/dev/input/a"},
                    {"name": "s1", "kind": "hid", "kiosk": "kiosk-1", "device": "/dev/input/b"},
                ]
            ),
            "scanners[1].name",
            "scanner name 's1' is used twice",
            id="duplicate-scanner",
        ),
        pytest.param(
            lambda d: d["lockboards"][0].update(query_all_closed_bit=2),
            "lockboards[0].query_all_closed_bit",
            "0 or 1",
            id="closed-bit-not-0-or-1",
        ),
    ],
)
def test_cross_checks(change: Any, path: str, message: str) -> None:
    document = yaml.safe_load(VALID)
    change(document)
    text = yaml.safe_dump(document, sort_keys=False)
    problems = problems_of(text)
    assert [p.path for p in problems] == [path], problems
    assert message in problems[0].message
    assert problems[0].line is not None


def test_zone_without_rule_is_reported_for_compartments_and_sensors() -> None:
    found = by_path(problems_of(mutated(lambda d: d["lockers"]["zones"].pop("frozen"))))
    assert set(found) == {"lockers.compartments[3].zone", "temperature_sensors[1].zone"}
    assert "zone 'frozen' has no rule" in found["lockers.compartments[3].zone"].message


def test_duplicate_bus_name_keeps_the_first_bus() -> None:
    """The second bus of a name does not replace the first for the compartments' checks."""
    found = by_path(problems_of(mutated(lambda d: d["lockboards"][1].update(name="main"))))
    assert set(found) == {"lockboards[1].name", "lockers.compartments[3].bus"}
    assert "lock bus name 'main' is used twice" in found["lockboards[1].name"].message
    assert "no lock bus named 'freezer'" in found["lockers.compartments[3].bus"].message


def test_validate_config_in_code_matches_the_file() -> None:
    """The same document validated directly: the loader adds nothing but paths and lines."""
    document = yaml.safe_load(VALID)
    assert EdgeConfig.model_validate(copy.deepcopy(document)) == parse_config(VALID, "x", NO_ENV)


# --- environment overrides ----------------------------------------------------------------------


def test_scalar_override_takes_the_setting_s_type() -> None:
    config = parse_config(
        VALID,
        "test.yaml",
        {
            "EDGE_HTTP__PORT": "8081",
            "EDGE_LOGGING__LEVEL": "DEBUG",
            "EDGE_LOCKERS__DOOR_OPEN_TIMEOUT_S": "12.5",
            "EDGE_LOCKERS__CODE_ATTEMPTS__MAX_FAILURES": "9",
            "EDGE_CONFIG": "/etc/edge/ignored.yaml",  # names the file, is not a setting
            "PATH": "/usr/bin",
        },
    )
    assert config.http.port == 8081 and isinstance(config.http.port, int)
    assert config.logging.level == "DEBUG"
    assert config.lockers.door_open_timeout_s == 12.5
    assert config.lockers.code_attempts.max_failures == 9


def test_override_can_set_a_setting_the_file_leaves_out() -> None:
    config = parse_config(
        "site: {id: s1}\ncode_secret: k\n", "min.yaml", {"EDGE_HTTP__HOST": "0.0.0.0"}
    )
    assert config.http.host == "0.0.0.0"


def test_list_items_are_overridden_by_index() -> None:
    config = parse_config(
        VALID,
        "test.yaml",
        {
            "EDGE_LOCKBOARDS__0__PORT": "/dev/ttyUSB3",
            "EDGE_LOCKBOARDS__0__QUERY_ALL_CLOSED_BIT": "1",
            "EDGE_LOCKBOARDS__1__BOARDS__0__LOCKS": "16",
            "EDGE_LOCKERS__COMPARTMENTS__3__ENABLED": "true",
            "EDGE_TEMPERATURE_SENSORS__0__STOPBITS": "1",
            "EDGE_TEMPERATURE_SENSORS__0__REGISTER__ADDRESS": "7",
        },
    )
    assert config.lockboards[0].port == "/dev/ttyUSB3"
    assert config.lockboards[1].port == "/dev/edge-locks1"
    assert config.lockboards[0].query_all_closed_bit == 1
    assert config.lockboards[1].boards[0].locks == 16
    assert config.lockers.compartments[3].enabled is True
    assert config.temperature_sensors[0].stopbits == 1
    assert config.temperature_sensors[0].register_map.address == 7


def test_text_settings_stay_text_when_they_look_like_numbers() -> None:
    """Values are not YAML: ``0123`` is not octal 83, ``12345`` is a valid site id."""
    config = parse_config(
        VALID,
        "test.yaml",
        {
            "EDGE_SITE__ID": "12345",
            "EDGE_SITE__NAME": "yes",
            "EDGE_CODE_SECRET": "0123",
            "EDGE_KIOSKS__0__TOKEN": "1_000",
        },
    )
    assert config.site.id == "12345"
    assert config.site.name == "yes"
    assert config.code_secret.get_secret_value() == "0123"
    assert config.kiosks[0].token.get_secret_value() == "1_000"


@pytest.mark.parametrize("name", ["EDGE_HTTP", "EDGE_LOCKERS", "EDGE_KIOSKS", "EDGE_LOCKBOARDS__0"])
def test_a_section_or_list_cannot_be_overridden(name: str) -> None:
    (problem,) = problems_of(VALID, {name: "x"})
    assert problem.source == name
    assert "only scalar settings" in problem.message
    assert f"(from {name})" in str(problem)


def test_bad_override_value_names_its_variable() -> None:
    problems = problems_of(
        VALID, {"EDGE_HTTP__PORT": "eighty", "EDGE_LOCKBOARDS__1__RETRIES": "99"}
    )
    found = by_path(problems)
    assert set(found) == {"http.port", "lockboards[1].retries"}
    port = found["http.port"]
    assert port.source == "EDGE_HTTP__PORT" and port.line is None
    assert str(port).startswith("http.port (from EDGE_HTTP__PORT): ")
    assert "integer" in port.message
    assert found["lockboards[1].retries"].source == "EDGE_LOCKBOARDS__1__RETRIES"


def test_override_of_a_missing_list_item_or_unknown_setting() -> None:
    (problem,) = problems_of(VALID, {"EDGE_LOCKBOARDS__5__PORT": "/dev/x"})
    assert problem.source == "EDGE_LOCKBOARDS__5__PORT"
    assert "no such setting: lockboards[5]" in problem.message

    # A typo in a variable's name is not silently ignored, and names the variable.
    (problem,) = problems_of(VALID, {"EDGE_HTPP__PORT": "8081"})
    assert problem.path == "htpp"
    assert problem.source == "EDGE_HTPP__PORT"
    assert problem.line is None


def test_config_check_shows_the_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGE_HTTP__PORT", "not-a-port")
    path = write(tmp_path, VALID)
    assert main(["config", "check", str(path)]) == 2
    assert "http.port (from EDGE_HTTP__PORT):" in capsys.readouterr().err


# --- secrets from files -------------------------------------------------------------------------


def test_secret_is_read_from_a_file_and_stripped(tmp_path: Path) -> None:
    (tmp_path / "code").write_text("  s3cret-key \n\n", encoding="utf-8")
    (tmp_path / "op").write_text("op-token\n", encoding="utf-8")
    (tmp_path / "courier").write_text("9876\n", encoding="utf-8")
    text = (
        VALID.replace("code_secret: code-secret", f"code_secret: {{file: {tmp_path / 'code'}}}")
        .replace("operator_token: operator-secret", f"operator_token: {{file: {tmp_path / 'op'}}}")
        .replace('credential: "2468"', f"credential: {{file: {tmp_path / 'courier'}}}")
    )
    config = parse_config(text, "test.yaml", NO_ENV)
    assert config.code_secret.get_secret_value() == "s3cret-key"
    assert config.http.operator_token is not None
    assert config.http.operator_token.get_secret_value() == "op-token"
    assert config.lockers.couriers[0].credential.get_secret_value() == "9876"


def test_missing_secret_file_is_a_clear_problem(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "code-secret"
    text = VALID.replace("code_secret: code-secret", f"code_secret: {{file: {missing}}}").replace(
        "    token: kiosk-secret", f"    token: {{file: {tmp_path / 'kiosk.token'}}}"
    )
    found = by_path(problems_of(text))
    assert set(found) == {"code_secret", "kiosks[0].token"}
    problem = found["code_secret"]
    assert problem.line == line_of(text, "code_secret:")
    assert f"cannot read secret file {missing}" in problem.message
    assert "No such file or directory" in problem.message


# --- the file itself ----------------------------------------------------------------------------


def test_nonexistent_file_is_one_clear_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path, NO_ENV)
    (problem,) = caught.value.problems
    assert problem.message == "cannot read file: No such file or directory"

    assert main(["config", "check", str(path)]) == 2
    captured = capsys.readouterr()
    assert str(path) in captured.err
    assert "cannot read file: No such file or directory" in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_a_file_that_is_not_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"site: {id: \xff\xfe}\n")
    assert main(["config", "check", str(path)]) == 2
    assert "not UTF-8 text" in capsys.readouterr().err


# --- the shipped examples -----------------------------------------------------------------------


def test_demo_example_is_valid() -> None:
    config = load_config(REPO / "config" / "demo.yaml", NO_ENV)
    assert config.site.id == "demo-site"
    assert {bus.protocol for bus in config.lockboards} == {"485-board", "kerong"}
    assert config.temperature_sensors and config.kiosks and config.lockers.couriers
    assert len(config.lockers.compartments) == 22


def test_demo_example_matches_the_simulator_command_in_its_comments() -> None:
    """The boards the comments tell people to simulate are the boards the file configures."""
    text = (REPO / "config" / "demo.yaml").read_text(encoding="utf-8")
    config = load_config(REPO / "config" / "demo.yaml", NO_ENV)
    commands = re.findall(r"--family (\S+) --boards (\S+) \\\n#\s+--link (\S+)", text)
    assert len(commands) == len(config.lockboards)
    for (family, boards, link), bus in zip(commands, config.lockboards, strict=True):
        assert (family, link) == (bus.protocol, bus.port)
        assert boards == ",".join(f"{b.address}:{b.locks}" for b in bus.boards)


def test_production_example_is_valid(tmp_path: Path) -> None:
    """Its secret files live under /etc/edge/secrets: the test provides them in a temp dir."""
    text = (REPO / "config" / "production.example.yaml").read_text(encoding="utf-8")
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    text = text.replace("/etc/edge/secrets/", f"{secrets_dir}/")
    referenced = re.findall(r"\{file: ([^}]+)\}", text)
    referenced = [path for path in referenced if path.startswith(str(secrets_dir))]
    assert len(referenced) == 5
    for path in referenced:
        Path(path).write_text(f"secret for {Path(path).name}\n", encoding="utf-8")
    # The upstream link's files: a signing key's public half and the TLS material.
    text = text.replace("/etc/edge/keys/", f"{tmp_path}/").replace("/etc/edge/tls/", f"{tmp_path}/")
    (tmp_path / "cloud-2026.pub").write_text(public_key_b64(generate_private_key()) + "\n")
    for name in ("ca.pem", "site.pem", "site.key"):
        (tmp_path / name).write_text("PEM\n")
    config = load_config(write(tmp_path, text, "production.yaml"), NO_ENV)

    assert config.code_secret.get_secret_value() == "secret for code-secret"
    assert config.database_path == Path("/var/lib/edge/edge.db")
    assert config.logging.format == "json"
    assert {bus.protocol for bus in config.lockboards} == {"485-board", "kerong"}
    for bus in config.lockboards:
        assert bus.port.startswith(("/dev/serial/by-id/", "/dev/edge-"))
    assert len(config.temperature_sensors) == 2
    assert config.lockers.code_attempts.max_failures == 5
    assert config.mqtt is not None and config.mqtt.effective_port == 8883
    assert config.mqtt.tls is not None and config.mqtt.tls.cert_file == tmp_path / "site.pem"
    assert [key.id for key in config.commands.trusted_keys] == ["cloud-2026"]
    assert config.outbox.when_full == "drop_oldest"


def test_a_missing_tls_file_is_a_config_problem(tmp_path: Path) -> None:
    text = (
        "site: {id: s1}\ncode_secret: abc\n"
        f"mqtt: {{host: broker, tls: {{ca_file: {tmp_path}/nowhere.pem}}}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "tls.yaml", NO_ENV)
    assert any(p.path == "mqtt.tls.ca_file" for p in caught.value.problems), caught.value


def test_blank_secrets_are_problems(tmp_path: Path) -> None:
    empty_file = tmp_path / "token"
    empty_file.write_text("\n")
    text = (
        f"site: {{id: s1}}\ncode_secret: '  '\nhttp: {{operator_token: {{file: {empty_file}}}}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "blank.yaml", NO_ENV)
    problems = {p.path: p.message for p in caught.value.problems}
    assert problems["code_secret"] == "a secret must not be empty"
    assert problems["http.operator_token"] == "a secret must not be empty"


def test_command_group_without_subcommand_shows_its_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from edge.cli import main

    assert main(["config"]) == 2
    assert "check" in capsys.readouterr().err
