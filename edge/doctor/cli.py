"""``edge doctor --config PATH``: probe everything the configuration names, read-only, and print
what works and what does not, with the next step for each failure.

Exit codes: 0 everything configured works, 1 some check failed, 2 invalid configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED = 0, 1


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    doctor = commands.add_parser(
        "doctor",
        help="probe every configured device, the broker, the models and the database",
        description=(
            "Probe every configured device (read-only: no lock is ever opened), the MQTT "
            "broker, the face models and the database, and print a table of what works and "
            "what does not, with the next step for each failure. Exit code 0: all ok, "
            "1: some check failed, 2: invalid configuration."
        ),
    )
    doctor.add_argument(
        "--config", type=Path, required=True, metavar="PATH", help="the controller's config"
    )
    doctor.add_argument(
        "--json", action="store_true", help="print one JSON object (the checks) instead"
    )
    doctor.add_argument(
        "--timeout",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="longest one probe may take (default 20; some allow more)",
    )
    doctor.add_argument(
        "--verbose", action="store_true", help="show the drivers' logs on stderr while probing"
    )
    doctor.set_defaults(handler=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from edge.config import load_config
    from edge.doctor.report import as_json, as_table, exit_code
    from edge.doctor.run import plan, run_doctor

    config = load_config(args.config)  # an invalid file: its problems, exit 2 (edge.cli)
    _quiet_logs(args.verbose)
    total = len(plan(config, args.config, args.timeout))
    # Progress on stderr, and only on a terminal: stdout carries the table or the JSON alone.
    bar = tqdm(
        total=total, desc="probing", unit="check", file=sys.stderr, leave=False, disable=None
    )
    with bar:
        findings = asyncio.run(
            run_doctor(config, args.config, timeout_s=args.timeout, on_done=bar.update)
        )
    print(as_json(findings) if args.json else as_table(findings))
    return EXIT_FAILED if exit_code(findings) else EXIT_OK


def _quiet_logs(verbose: bool) -> None:
    """Drivers log every failed open and timeout; the table already says it, once."""
    root = logging.getLogger()
    if not root.handlers:  # a test runner's or caller's logging is left alone
        logging.basicConfig(
            level=logging.DEBUG if verbose else logging.CRITICAL,
            stream=sys.stderr,
            format="%(levelname)s %(name)s: %(message)s",
        )
