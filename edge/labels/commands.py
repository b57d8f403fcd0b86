"""``label.bind`` and ``label.refresh``: which product a shelf label shows, and forcing a push.

Both change only the database, inside the command's transaction: the binding and the push it
queues commit together, and the label service sends the push after the commit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import Field, field_validator, model_validator
from sqlmodel import col, select

from edge.catalog.commands import gtin14
from edge.catalog.prices import PriceBook
from edge.commands.dispatcher import CommandDispatcher
from edge.commands.errors import CommandFailed
from edge.commands.schema import CommandData
from edge.commands.verify import VerifiedCommand
from edge.config.labels import LabelsConfig
from edge.db import Transaction
from edge.db.tables import Label, Product
from edge.labels import pushes
from edge.labels.rendering.model import TEMPLATES

_MAC = re.compile(r"^(?:[0-9A-F]{12}|[0-9A-F]{16})$")
MAX_LABELS = 20_000


def label_address(value: str) -> str:
    """A label's MAC as its access point shows it: 12 or 16 hex digits, upper case."""
    mac = value.replace(":", "").replace("-", "").strip().upper()
    if not _MAC.match(mac):
        raise ValueError("a label id is its MAC: 12 or 16 hex digits")
    return mac


class LabelBind(CommandData):
    label_id: str
    gtin: str | None
    """None unbinds the label: it keeps its last image and is no longer updated."""
    template: str | None = None
    """One of the shipped templates (``2.9-bwr``…); default: ``labels.default_template``."""
    access_point: str | None = None
    """The access point the label is registered with; default: the first configured."""

    _label = field_validator("label_id")(label_address)

    @field_validator("gtin")
    @classmethod
    def _gtin(cls, value: str | None) -> str | None:
        return None if value is None else gtin14(value)

    @field_validator("template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None and value not in TEMPLATES:
            raise ValueError(f"unknown template {value!r}: one of {', '.join(TEMPLATES)}")
        return value


class LabelRefresh(CommandData):
    label_ids: list[str] | None = Field(default=None, max_length=MAX_LABELS)
    gtins: list[str] | None = Field(default=None, max_length=MAX_LABELS)
    all: bool = False
    """Every bound label (after replacing an access point, say)."""

    @field_validator("label_ids")
    @classmethod
    def _labels(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [label_address(v) for v in value]

    @field_validator("gtins")
    @classmethod
    def _gtins(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [gtin14(v) for v in value]

    @model_validator(mode="after")
    def _one_selector(self) -> LabelRefresh:
        chosen = [self.label_ids is not None, self.gtins is not None, self.all]
        if sum(chosen) != 1:
            raise ValueError("name exactly one of label_ids, gtins or all")
        return self


def register_label_commands(
    dispatcher: CommandDispatcher,
    config: LabelsConfig,
    prices: PriceBook,
    now: Callable[[], datetime],
) -> None:
    def bind(tx: Transaction, data: LabelBind, _command: VerifiedCommand) -> dict[str, Any]:
        return apply_bind(tx, data, config, prices, now())

    def refresh(tx: Transaction, data: LabelRefresh, _command: VerifiedCommand) -> dict[str, Any]:
        return apply_refresh(tx, data, prices, now())

    dispatcher.register("label.bind", LabelBind, bind)
    dispatcher.register("label.refresh", LabelRefresh, refresh)


def apply_bind(
    tx: Transaction, data: LabelBind, config: LabelsConfig, prices: PriceBook, now: datetime
) -> dict[str, Any]:
    s = tx.session
    access_points = [ap.name for ap in config.access_points]
    access_point = data.access_point or access_points[0]
    if access_point not in access_points:
        raise CommandFailed(
            "unknown_access_point",
            f"no access point {access_point!r} is configured (labels.access_points)",
        )
    if data.gtin is not None and s.get(Product, data.gtin) is None:
        raise CommandFailed("unknown_product", f"{data.gtin} is not in the catalogue")
    template = data.template or config.default_template
    label = s.get(Label, data.label_id)
    if label is None:
        label = Label(
            id=data.label_id,
            gtin=data.gtin,
            template=template,
            access_point=access_point,
            bound_at=now,
            updated_at=now,
        )
    elif (label.gtin, label.template, label.access_point) != (data.gtin, template, access_point):
        label.gtin, label.template, label.access_point = data.gtin, template, access_point
        label.bound_at = label.updated_at = now
    s.add(label)
    s.flush()
    queued = pushes.plan(tx, [label], prices, now)
    return {"label_id": label.id, "gtin": label.gtin, "template": template, "queued": queued}


def apply_refresh(
    tx: Transaction, data: LabelRefresh, prices: PriceBook, now: datetime
) -> dict[str, Any]:
    query = select(Label).where(col(Label.gtin).is_not(None))
    if data.label_ids is not None:
        query = query.where(col(Label.id).in_(data.label_ids))
    elif data.gtins is not None:
        query = query.where(col(Label.gtin).in_(data.gtins))
    labels = tx.session.exec(query).all()
    return {"labels": len(labels), "queued": pushes.plan(tx, labels, prices, now, force=True)}
