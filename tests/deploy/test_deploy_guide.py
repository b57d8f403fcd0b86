"""deploy/INSTALL.md and deploy/debian-packages.txt stay true to the code they describe."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from edge.cli import build_parser
from edge.config import parse_config
from tests.deploy.debian_list import debian_packages, parse_packages

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "deploy" / "INSTALL.md"
GUIDE_TEXT = GUIDE.read_text(encoding="utf-8")
DEBIAN_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"^ *```{language}\n(.*?)^ *```", GUIDE_TEXT, re.MULTILINE | re.DOTALL)


def shell_lines() -> list[str]:
    """The guide's shell commands, continuation lines joined."""
    lines: list[str] = []
    for block in code_blocks("sh"):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip():
                lines.append(line.strip())
    return lines


def edge_commands() -> list[list[str]]:
    """Every ``edge ...`` invocation in the guide's shell blocks, as argv after ``edge``."""
    commands = []
    for line in shell_lines():
        for match in re.finditer(
            r"(?:^|&&\s*|--\s+)(?:/opt/edge/\.venv/bin/)?edge\s+([a-z][^&|;#>]*)", line
        ):
            commands.append(shlex.split(match.group(1)))
    return commands


def test_the_guide_uses_the_main_commands() -> None:
    used = {" ".join(command[:2]) for command in edge_commands()}
    for expected in ("config check", "models prepare", "db upgrade", "doctor --config"):
        assert expected in used, f"the guide shows `edge {expected}`"


@pytest.mark.parametrize("argv", edge_commands(), ids=lambda argv: " ".join(argv))
def test_every_edge_command_in_the_guide_parses(argv: list[str]) -> None:
    parser = build_parser()
    if argv[0] == "doctor" and "doctor" not in parser.format_help():
        pytest.skip("edge doctor is not part of this build's command line yet")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"`edge {' '.join(argv)}` is not a valid command line (exit {exc.code})")
    assert hasattr(args, "handler")


def test_the_minimal_configuration_in_the_guide_is_valid(tmp_path: Path) -> None:
    (block,) = [b for b in code_blocks("yaml") if "lockboards:" in b]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in re.findall(r"/etc/edge/secrets/([\w.-]+)", block):
        (secrets / name).write_text("a-secret-value\n", encoding="utf-8")
    text = block.replace("/etc/edge/secrets/", f"{secrets}/")
    config = parse_config(text, "INSTALL.md", environ={})
    assert config.site.id == "store-0042"
    assert config.http.operator_token is not None
    assert config.lockboards[0].port == "/dev/edge-locks0"
    assert len(config.lockers.compartments) == 3


def test_the_guide_links_only_to_files_that_exist() -> None:
    for target in re.findall(r"\]\(([^)#]+)\)", GUIDE_TEXT):
        if "://" not in target:
            assert (GUIDE.parent / target).exists(), target
    for path in re.findall(r"/opt/edge/((?:deploy|config)/[\w.-]+)", GUIDE_TEXT):
        assert (ROOT / path).exists(), path


def test_the_guides_install_line_is_the_lists_required_packages() -> None:
    install = next(
        line for line in shell_lines() if line.startswith("apt-get install") and "python3" in line
    )
    named = set(install.split()) - {"apt-get", "install", "-y", "--no-install-recommends"}
    assert named == {p.name for p in debian_packages() if not p.optional}


def test_the_package_list_says_why_for_each_package() -> None:
    packages = debian_packages()
    names = [p.name for p in packages]
    assert len(names) == len(set(names)), "no package twice"
    for package in packages:
        assert DEBIAN_NAME.fullmatch(package.name), package.name
        assert len(package.why) > 10, f"{package.name}: say why"
    required = {p.name for p in packages if not p.optional}
    optional = {p.name for p in packages if p.optional}
    assert {"python3", "python3-venv", "fonts-wqy-microhei", "sqlite3"} <= required
    assert {"mosquitto", "cage", "chromium", "fonts-noto-cjk"} <= optional


def test_the_list_parser_refuses_a_package_without_a_reason() -> None:
    with pytest.raises(AssertionError, match="line 2"):
        parse_packages("python3   # the runtime\nmosquitto\n")


def _bookworm_apt() -> bool:
    release = Path("/etc/os-release")
    return (
        shutil.which("apt-cache") is not None
        and release.exists()
        and "VERSION_CODENAME=bookworm" in release.read_text(encoding="utf-8")
    )


@pytest.mark.skipif(not _bookworm_apt(), reason="needs apt on Debian 12 (bookworm)")
def test_every_listed_package_exists_in_bookworm() -> None:
    names = [p.name for p in debian_packages()]
    done = subprocess.run(
        ["apt-cache", "policy", *names], capture_output=True, text=True, timeout=60, check=True
    )
    candidates = dict(
        re.findall(r"^(\S+):\n\s+Installed: .*\n\s+Candidate: (.*)$", done.stdout, re.M)
    )
    if not any(value != "(none)" for value in candidates.values()):
        pytest.skip("apt has no package lists here (apt-get update was never run)")
    missing = [name for name in names if candidates.get(name, "(none)") == "(none)"]
    assert missing == []
