"""Persistence: SQLite through SQLModel, migrated with Alembic."""

from edge.db.database import Database, Transaction
from edge.db.migrate import upgrade_to_head

__all__ = ["Database", "Transaction", "upgrade_to_head"]
