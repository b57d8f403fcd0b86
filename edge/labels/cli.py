"""``edge labels``: where the site's shelf labels stand, and pushing them again, for operators.

Both work on the database the configuration names, whether the controller runs or not: a
refresh queues pushes that the running controller's senders pick up within seconds; ``--follow``
shows a progress bar until every push has been delivered or has failed.
Exit codes: 0 done, 1 some labels failed, 2 bad arguments or configuration.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.db import Database

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    labels = commands.add_parser("labels", help="electronic shelf labels")
    labels.set_defaults(handler=_help_of(labels))
    sub = labels.add_subparsers(title="labels commands", metavar="COMMAND")

    status = sub.add_parser("status", help="pushes by state (queued, uploaded, confirmed…)")
    _common(status)
    status.set_defaults(handler=cmd_status)

    refresh = sub.add_parser(
        "refresh", help="push labels again, even if their content is unchanged"
    )
    _common(refresh)
    which = refresh.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every bound label")
    which.add_argument("--gtin", nargs="+", metavar="GTIN", help="the labels of these products")
    which.add_argument("--label", nargs="+", metavar="MAC", help="these labels")
    refresh.set_defaults(handler=cmd_refresh)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="the controller's config")
    parser.add_argument(
        "--follow", action="store_true", help="show progress until every push is done"
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between progress reads"
    )


def _help_of(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def show(_args: argparse.Namespace) -> int:
        parser.print_help()
        return EXIT_INVALID

    return show


def _database(config_path: Path) -> Database:
    from edge.config import load_config
    from edge.db import Database
    from edge.db.migrate import upgrade_to_head

    config = load_config(config_path)
    db = Database(config.database_path, config.site.id)
    upgrade_to_head(db.engine)  # a site whose controller never ran yet has no tables
    return db


def _counts(db: Database) -> dict[str, int]:
    from edge.labels.pushes import counts

    return db.transact_sync(lambda tx: counts(tx.session))


def cmd_status(args: argparse.Namespace) -> int:
    db = _database(args.config)
    try:
        found = _counts(db)
        print("  ".join(f"{state} {n}" for state, n in found.items()))
        return follow(db, args.interval) if args.follow else EXIT_OK
    finally:
        db.close()


def cmd_refresh(args: argparse.Namespace) -> int:
    from edge.catalog.prices import PriceBook
    from edge.clock import Clock
    from edge.labels.commands import LabelRefresh, apply_refresh

    try:
        request = LabelRefresh(label_ids=args.label, gtins=args.gtin, all=args.all)
    except ValueError as exc:
        print(f"edge labels refresh: {exc}")
        return EXIT_INVALID
    db = _database(args.config)
    try:
        prices = PriceBook(db)
        prices.load_sync()
        now = Clock().now()
        result = db.transact_sync(lambda tx: apply_refresh(tx, request, prices, now))
        print(f"{result['queued']} of {result['labels']} labels queued for a push")
        return follow(db, args.interval) if args.follow else EXIT_OK
    finally:
        db.close()


def follow(db: Database, interval: float) -> int:
    """A progress bar of delivered (or failed) pushes, until none is queued or uploaded."""
    from tqdm import tqdm

    from edge.labels.pushes import CONFIRMED, FAILED, QUEUED, UPLOADED

    with tqdm(unit="label", desc="labels delivered") as bar:
        while True:
            found = _counts(db)
            bar.total = sum(found.values())
            bar.n = found[CONFIRMED] + found[FAILED]
            bar.set_postfix(uploaded=found[UPLOADED], failed=found[FAILED], refresh=False)
            bar.refresh()
            if found[QUEUED] + found[UPLOADED] == 0:
                break
            time.sleep(interval)
    if found[FAILED]:
        print(
            f"{found[FAILED]} labels failed: see `edge labels status` and the label.failed events"
        )
        return EXIT_FAILED
    return EXIT_OK
