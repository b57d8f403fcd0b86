"""Building blocks of the configuration schema: strict models, secrets, serial choices."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, SecretStr


def read_secret_file(value: Any) -> Any:
    """Accept ``{file: PATH}`` and return the file's content, stripped of its trailing newline."""
    if isinstance(value, dict) and set(value) == {"file"}:
        path = Path(str(value["file"])).expanduser()
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from exc
    return value


def _not_blank(value: SecretStr) -> SecretStr:
    # An empty token would let anyone in; an empty code secret would make codes guessable.
    if not value.get_secret_value().strip():
        raise ValueError("a secret must not be empty")
    return value


Secret = Annotated[SecretStr, BeforeValidator(read_secret_file), AfterValidator(_not_blank)]


def _int_from_text(value: Any) -> Any:
    """Environment overrides arrive as text; a choice among integers accepts ``"1"`` too."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


Bit = Annotated[Literal[0, 1], BeforeValidator(_int_from_text)]
StopBits = Annotated[Literal[1, 2], BeforeValidator(_int_from_text)]


class Strict(BaseModel):
    """Unknown keys are errors: a typo in a config must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
