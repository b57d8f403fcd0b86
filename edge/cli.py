"""The ``edge`` command line. Errors are one clear sentence, never a bare traceback."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from edge import __version__
from edge.commands.cli import add_parsers as add_command_parsers
from edge.config import ConfigError, EdgeConfig, load_config
from edge.doctor.cli import add_parsers as add_doctor_parsers
from edge.labels.cli import add_parsers as add_label_parsers

log = logging.getLogger("edge.cli")

EXIT_OK, EXIT_FAILURE, EXIT_INVALID = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_INVALID
    try:
        code: int = args.handler(args)
        return code
    except ConfigError as exc:
        _print_problems(exc)
        return EXIT_INVALID
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as exc:  # the last line of defence: one sentence, details in the log
        logging.getLogger("edge").debug("command failed", exc_info=True)
        print(f"edge: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge", description="Edge controller for unattended stores and smart lockers."
    )
    parser.add_argument("--version", action="version", version=f"edge {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = commands.add_parser("run", help="run the controller until SIGINT/SIGTERM")
    run.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        default=os.environ.get("EDGE_CONFIG") or None,
        help="configuration file (YAML); default: $EDGE_CONFIG",
    )
    run.set_defaults(handler=cmd_run)

    demo = commands.add_parser(
        "demo", help="run the whole controller on simulated hardware and walk through it"
    )
    demo.add_argument(
        "--data-dir",
        type=Path,
        help="keep the demo database here (default: a fresh temporary folder)",
    )
    demo.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    demo.add_argument(
        "--exit-after-walkthrough",
        action="store_true",
        help="stop after the guided deposit and pickup instead of serving on",
    )
    demo.set_defaults(handler=cmd_demo)

    config = commands.add_parser("config", help="configuration tools")
    config.set_defaults(handler=_help_of(config))
    config_commands = config.add_subparsers(title="config commands", metavar="COMMAND")
    check = config_commands.add_parser("check", help="validate a configuration file")
    check.add_argument("path", type=Path, metavar="PATH")
    check.set_defaults(handler=cmd_config_check)

    db = commands.add_parser("db", help="database tools")
    db.set_defaults(handler=_help_of(db))
    db_commands = db.add_subparsers(title="db commands", metavar="COMMAND")
    upgrade = db_commands.add_parser("upgrade", help="migrate the database to this release")
    upgrade.add_argument("--config", required=True, type=Path, metavar="PATH")
    upgrade.set_defaults(handler=cmd_db_upgrade)

    add_command_parsers(commands)  # edge keys ..., edge command ...
    add_label_parsers(commands)  # edge labels ...
    add_doctor_parsers(commands)  # edge doctor

    models = commands.add_parser("models", help="face recognition models")
    models.set_defaults(handler=_help_of(models))
    model_commands = models.add_subparsers(title="models commands", metavar="COMMAND")
    prepare = model_commands.add_parser(
        "prepare",
        help="verify, repair and cache the face models (once per install; run may do it too)",
    )
    where = prepare.add_mutually_exclusive_group()
    where.add_argument("--config", type=Path, metavar="PATH", help="use facepay.models.cache_dir")
    where.add_argument("--cache-dir", type=Path, metavar="DIR", help="prepare into this folder")
    prepare.add_argument("--force", action="store_true", help="prepare again even if cached")
    prepare.set_defaults(handler=cmd_models_prepare)

    facepay = commands.add_parser("facepay", help="face payment tools")
    facepay.set_defaults(handler=_help_of(facepay))
    facepay_commands = facepay.add_subparsers(title="facepay commands", metavar="COMMAND")
    keygen = facepay_commands.add_parser(
        "keygen", help="write a new template key file (mode 0600) for facepay.template_key_file"
    )
    keygen.add_argument("path", type=Path, metavar="PATH")
    keygen.set_defaults(handler=cmd_facepay_keygen)

    bench = commands.add_parser("bench", help="run a benchmark; the last line is JSON")
    bench.add_argument(
        "name",
        choices=["locker", "sync", "fleet", "rfid", "facepay", "labels"],
        help="which benchmark",
    )
    bench.add_argument("--cycles", type=int, default=1000, help="locker: deposit+pickup cycles")
    bench.add_argument(
        "--events", type=int, default=100_000, help="sync: events enqueued and drained per round"
    )
    bench.add_argument(
        "--plain-events", type=int, default=20_000, help="sync: events of the plain QoS 1 loop"
    )
    bench.add_argument("--sites", type=int, default=200, help="fleet: site engines to run")
    bench.add_argument(
        "--sessions", type=int, default=30, help="rfid: cabinet sessions of 500 items to settle"
    )
    bench.add_argument("--frames", type=int, default=200, help="facepay: frames per gallery size")
    bench.add_argument(
        "--search-members",
        type=int,
        default=1_000_000,
        help="facepay: gallery size of the 1:N search and faiss comparison",
    )
    bench.add_argument(
        "--labels", type=int, default=10_000, help="labels: bound labels repriced end to end"
    )
    bench.set_defaults(handler=cmd_bench)
    return parser


def _help_of(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """For a command group given without its subcommand: that group's help, exit 2."""

    def show(_args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return EXIT_INVALID

    return show


def _print_problems(exc: ConfigError) -> None:
    print(
        f"{exc.source}: invalid configuration ({len(exc.problems)} problem"
        f"{'s' if len(exc.problems) != 1 else ''}):",
        file=sys.stderr,
    )
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


def cmd_config_check(args: argparse.Namespace) -> int:
    config = load_config(args.path)
    print(
        f"{args.path}: valid (site {config.site.id}, {len(config.lockboards)} lock bus(es), "
        f"{len(config.lockers.compartments)} compartments, "
        f"{len(config.temperature_sensors)} temperature sensor(s))"
    )
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from edge.db.database import create_sqlite_engine
    from edge.db.migrate import current_revision, upgrade_to_head

    config = load_config(args.config)
    engine = create_sqlite_engine(config.database_path)
    before = current_revision(engine)
    upgrade_to_head(engine)
    print(f"{config.database_path}: {before or 'empty'} -> {current_revision(engine)}")
    return EXIT_OK


def _configure_logs(config: EdgeConfig) -> None:
    from edge.logs import configure_logging

    configure_logging(config.logging.level, config.logging.format)


def cmd_run(args: argparse.Namespace) -> int:
    if args.config is None:
        print("edge run: give --config PATH (or set EDGE_CONFIG)", file=sys.stderr)
        return EXIT_INVALID
    config = load_config(args.config)
    _configure_logs(config)
    asyncio.run(_run(config))
    return EXIT_OK


async def _run(config: EdgeConfig) -> None:
    from edge.app import EdgeApp, run_until_signalled

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    app = EdgeApp(config)
    await run_until_signalled(app, stop)


def cmd_models_prepare(args: argparse.Namespace) -> int:
    from models.prepare import prepare_models

    if args.config is not None:
        config = load_config(args.config)
        if config.facepay is None:
            print("edge: the configuration has no facepay section", file=sys.stderr)
            return EXIT_INVALID
        cache_dir = config.resolve(config.facepay.models.cache_dir)
    else:
        cache_dir = args.cache_dir or Path("models-cache")
    prepared = prepare_models(cache_dir, force=args.force, progress=print)
    for model in prepared.values():
        print(f"{model.name}: {model.path} (sha256 {model.prepared_sha256[:16]}…)")
    return EXIT_OK


def cmd_facepay_keygen(args: argparse.Namespace) -> int:
    from edge.facepay.templates import write_key_file

    key_id = write_key_file(args.path)
    print(
        f"wrote template key {key_id} to {args.path} (mode 0600); keep a backup: "
        "templates sealed with it cannot be opened without it"
    )
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from edge.demo.run import run_demo

    return asyncio.run(run_demo(args.data_dir, args.port, args.exit_after_walkthrough))


def cmd_bench(args: argparse.Namespace) -> int:
    if args.name == "sync":
        from edge.bench.sync import run_sync_bench

        return asyncio.run(run_sync_bench(args.events, args.plain_events))
    if args.name == "fleet":
        from edge.bench.fleet import run_fleet_bench

        return asyncio.run(run_fleet_bench(args.sites))
    if args.name == "rfid":
        from edge.bench.rfid import run_rfid_bench

        return asyncio.run(run_rfid_bench(args.sessions))
    if args.name == "facepay":
        from edge.bench.facepay import run_facepay_bench

        return run_facepay_bench(args.frames, args.search_members)
    if args.name == "labels":
        from edge.bench.labels import run_labels_bench

        return run_labels_bench(args.labels)
    from edge.bench.locker import run_locker_bench

    return asyncio.run(run_locker_bench(args.cycles))


if __name__ == "__main__":
    sys.exit(main())
