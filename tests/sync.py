"""Helpers for tests of the sync engine on its own: a site database and a running engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from edge.clock import Clock
from edge.commands.dispatcher import CommandDispatcher
from edge.commands.keys import generate_private_key, public_key_b64
from edge.commands.verify import CommandVerifier
from edge.config.sync import CommandsConfig, MqttConfig, TrustedKey
from edge.db import Database
from edge.db.migrate import upgrade_to_head
from edge.sync.engine import SyncEngine
from edge.sync.replay import register_sync_commands

CLOUD_KEY = generate_private_key()


def site_database(tmp_path: Path, site: str) -> Database:
    database = Database(tmp_path / "site.db", site)
    upgrade_to_head(database.engine)
    return database


@asynccontextmanager
async def running(engine: SyncEngine) -> AsyncIterator[SyncEngine]:
    """The engine's connection loop for the duration of the block; a clean stop after."""
    task = asyncio.create_task(engine.run_forever())
    try:
        yield engine
    finally:
        await engine.stop(flush_timeout_s=2)
        await asyncio.wait_for(task, 10)


def engine_taking_commands(config: MqttConfig, site: str, db: Database) -> SyncEngine:
    """An engine whose site trusts ``CLOUD_KEY`` and answers ``sync.replay``."""
    trusted = [TrustedKey(id="cloud", public_key=public_key_b64(CLOUD_KEY))]
    dispatcher = CommandDispatcher(CommandVerifier(CommandsConfig(trusted_keys=trusted)), db)
    engine = SyncEngine(config, site, "t", db, Clock(), on_command=dispatcher.handle)
    register_sync_commands(dispatcher, db, engine.uplink)
    return engine
