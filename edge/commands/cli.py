"""``edge keys`` and ``edge command``: the signing side of downlink commands, for operators.

Hooked into ``edge.cli`` by ``add_parsers``; heavy imports wait until a command runs.
Exit codes: 0 done (the command was applied), 1 rejected, failed or unreachable, 2 bad
arguments, 3 no ``command.result`` within ``--wait``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.config.sync import MqttConfig

EXIT_OK, EXIT_FAILURE, EXIT_INVALID, EXIT_NO_RESULT = 0, 1, 2, 3

_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SITE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class _Invalid(Exception):
    """A bad argument: the message is the sentence shown, the exit code is 2."""


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="keys that sign downlink commands")
    keys.set_defaults(handler=_help_of(keys))
    keys_commands = keys.add_subparsers(title="keys commands", metavar="COMMAND")
    generate = keys_commands.add_parser(
        "generate",
        help="create an Ed25519 key pair: PATH (private, mode 0600) and PATH.pub",
    )
    generate.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="PATH",
        help="where to write the private key; the public key goes to PATH.pub",
    )
    generate.add_argument(
        "--id",
        dest="key_id",
        metavar="ID",
        help="the key's id in commands.trusted_keys (default: from the file name)",
    )
    generate.add_argument("--force", action="store_true", help="replace existing files")
    generate.set_defaults(handler=cmd_keys_generate)

    command = commands.add_parser("command", help="signed downlink commands")
    command.set_defaults(handler=_help_of(command))
    command_commands = command.add_subparsers(title="command commands", metavar="COMMAND")
    send = command_commands.add_parser(
        "send",
        help="sign a command, publish it to a site, optionally wait for its result",
        description="Sign a command, publish it (QoS 1) to the site's commands topic, and with "
        "--wait print its command.result. Exit 0: applied; 1: rejected, failed or the broker "
        "unreachable; 2: bad arguments; 3: no result within --wait.",
    )
    send.add_argument(
        "--key",
        required=True,
        type=Path,
        metavar="PRIVATE_PEM",
        help="the signing key (PKCS8 PEM, as written by edge keys generate)",
    )
    send.add_argument("--kid", metavar="ID", help="name the signing key in the envelope")
    send.add_argument("--type", required=True, metavar="TYPE", help="e.g. compartment.disable")
    send.add_argument(
        "--data", required=True, metavar="JSON", help="a JSON object, or @FILE holding one"
    )
    send.add_argument(
        "--ttl", type=float, default=300.0, metavar="SECONDS", help="validity (default 300)"
    )
    send.add_argument(
        "--config", type=Path, metavar="PATH", help="take broker and site from this config"
    )
    send.add_argument("--host", metavar="HOST", help="broker host (without --config)")
    send.add_argument("--port", type=int, metavar="PORT", help="broker port (default 1883)")
    send.add_argument("--site", metavar="SITE", help="site id (without --config)")
    send.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for the command.result (default: do not wait)",
    )
    send.set_defaults(handler=cmd_command_send)


def _help_of(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def show(_args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return EXIT_INVALID

    return show


# ---------------------------------------------------------------------- edge keys generate


def cmd_keys_generate(args: argparse.Namespace) -> int:
    from edge.commands.keys import generate_private_key, public_key_b64, write_key_pair

    path: Path = args.out
    key_id = args.key_id or _key_id_from(path)
    if not _KEY_ID.match(key_id):
        print(
            f"edge keys generate: key id {key_id!r} may hold only letters, digits, '_', '.', '-' "
            "(at most 64)",
            file=sys.stderr,
        )
        return EXIT_INVALID
    key = generate_private_key()
    try:
        public_path = write_key_pair(path, key, force=args.force)
    except FileExistsError as exc:
        print(f"edge keys generate: {exc}; give --force to replace it", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:
        print(f"edge keys generate: cannot write {path}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILURE
    public = public_key_b64(key)
    print(f"private key: {path} (mode 0600; it signs commands, keep it secret)")
    print(f"public key:  {public_path}")
    print(public)
    print()
    print("Trust it on a site (configuration file):")
    print("commands:")
    print("  trusted_keys:")
    print(f"    - id: {key_id}")
    print(f'      public_key: "{public}"')
    return EXIT_OK


def _key_id_from(path: Path) -> str:
    stem = path.name.removesuffix(".pem") or "upstream"
    return re.sub(r"[^A-Za-z0-9_.-]", "-", stem)[:64]


# ---------------------------------------------------------------------- edge command send


def cmd_command_send(args: argparse.Namespace) -> int:
    try:
        return _send(args)
    except _Invalid as exc:
        print(f"edge command send: {exc}", file=sys.stderr)
        return EXIT_INVALID


def _send(args: argparse.Namespace) -> int:
    import aiomqtt

    from edge.commands.envelope import TYPE_PATTERN, sign_command
    from edge.commands.keys import load_private_key
    from edge.commands.send import send_command

    if not TYPE_PATTERN.match(args.type):
        raise _Invalid(f"--type {args.type!r} is not of the form domain.verb")
    if args.ttl <= 0:
        raise _Invalid("--ttl must be a positive number of seconds")
    if args.wait < 0:
        raise _Invalid("--wait must not be negative")
    data = _read_data(args.data)
    mqtt, site = _broker(args)
    try:
        key = load_private_key(args.key)
    except ValueError as exc:
        raise _Invalid(str(exc)) from None
    envelope = sign_command(key, args.type, data, ttl_s=args.ttl, kid=args.kid, site=site)
    try:
        result = asyncio.run(send_command(mqtt, site, envelope, args.wait))
    except (aiomqtt.MqttError, OSError) as exc:
        print(
            f"edge command send: could not send to the broker at {mqtt.host}:"
            f"{mqtt.effective_port}: {exc}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    print(envelope["id"])
    if args.wait <= 0:
        return EXIT_OK
    if result is None:
        print(
            f"edge command send: no command.result for {envelope['id']} within {args.wait:g} s",
            file=sys.stderr,
        )
        return EXIT_NO_RESULT
    print(json.dumps(result, ensure_ascii=False))
    return EXIT_OK if result.get("status") == "ok" else EXIT_FAILURE


def _read_data(text: str) -> dict[str, Any]:
    source = "--data"
    if text.startswith("@"):
        source = text[1:]
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise _Invalid(f"cannot read {source}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _Invalid(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _Invalid(f"{source} must hold a JSON object")
    return data


def _broker(args: argparse.Namespace) -> tuple[MqttConfig, str]:
    """The broker settings and site id, from ``--config`` or from ``--host``/``--site``."""
    from pydantic import ValidationError

    from edge.config import load_config
    from edge.config.sync import MqttConfig

    if args.config is not None:
        if args.host or args.port or args.site:
            raise _Invalid("give either --config or --host/--port/--site, not both")
        config = load_config(args.config)  # an invalid file: its problems, exit 2 (edge.cli)
        if config.mqtt is None:
            raise _Invalid(f"{args.config} has no mqtt section")
        return config.mqtt, config.site.id
    if not args.host or not args.site:
        raise _Invalid("give --config PATH, or --host HOST and --site SITE")
    if not _SITE_ID.match(args.site):
        raise _Invalid(f"--site {args.site!r} is not a valid site id")
    try:
        return MqttConfig(host=args.host, port=args.port), args.site
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise _Invalid(f"--{where}: {problem['msg']}") from None
