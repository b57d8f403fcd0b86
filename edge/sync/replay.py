"""``sync.replay``: the upstream asks for events again from a ``seq`` on.

Delivery is at least once up to the broker's acknowledgement. A broker that dies before it has
written acknowledged messages to disk (Mosquitto saves on a clean stop and at intervals) loses
them; the consumer sees the gap in ``seq`` and asks for the range again. Events are replayable
for as long as they are retained (``outbox.delivered_retention_h``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from edge.commands.dispatcher import CommandDispatcher, Result
from edge.commands.errors import CommandFailed
from edge.commands.verify import VerifiedCommand
from edge.db import Database
from edge.outbox import cursor
from edge.sync.uplink import OutboxPublisher


class ReplayData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_seq: int = Field(ge=1)


def register_sync_commands(
    dispatcher: CommandDispatcher, db: Database, publisher: OutboxPublisher
) -> None:
    async def replay(data: ReplayData, _command: VerifiedCommand) -> Result:
        def bounds(session: Session) -> tuple[int | None, cursor.Position]:
            return cursor.earliest_retained(session), cursor.position(session)

        earliest, position = await db.read(bounds)
        if data.from_seq > position.last:
            raise CommandFailed(
                "nothing_to_replay", f"the last event is seq {position.last}; nothing follows"
            )
        if earliest is None or data.from_seq < earliest:
            raise CommandFailed(
                "pruned",
                f"events before seq {earliest or position.last + 1} are no longer kept "
                "(outbox.delivered_retention_h)",
            )
        publisher.rewind(data.from_seq - 1)
        return {"from_seq": data.from_seq, "through_seq": position.last}

    dispatcher.register_async("sync.replay", ReplayData, replay)
