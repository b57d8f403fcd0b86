"""The base of every command's data schema."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class CommandData(BaseModel):
    """Command data: unknown fields are errors, like unknown keys in the configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)
