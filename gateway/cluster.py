"""The other instances' side of a turn: room, turn and stop events over the bus.

A frame for a conversation's viewers goes to the viewers here and, as a ``room`` event, to
every other instance's; a new reply goes out as a ``turn`` event (its user message, and the
message id whose log the other instances mirror for their viewers); a ``stop`` event asks
the instance that produces a reply to stop it; a ``delete`` event closes a deleted
conversation's viewers and drops its replies' logs on every instance. With the memory bus
(one instance) nothing arrives from elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib

from .errors import StoreUnavailable
from .rooms import Rooms
from .stores.events import Bus, Event
from .stores.replies import ReplyStore
from .supervisor import ReplySupervisor


class ClusterEvents:
    """Publishes this instance's room and turn events, and applies the other instances'.

    Contract: an event from elsewhere touches only this instance's viewers and reply tasks:
    a ``room`` frame goes to the conversation's viewers here; a ``turn`` sends its user
    message (if any: a ``regenerate`` has none), then, where anyone here watches the
    conversation, the reply (mirrored from the replies store); a ``stop`` ends the reply if,
    and only if, it is produced here; a ``delete`` stops the conversation's replies produced
    here, drops their logs and closes its viewers here with 1000 ``conversation deleted``.
    """

    def __init__(
        self, bus: Bus, rooms: Rooms, replies: ReplyStore, supervisor: ReplySupervisor
    ) -> None:
        self.bus = bus
        self.rooms = rooms
        self.replies = replies
        self.supervisor = supervisor
        bus.on("room", self._on_room_event)
        bus.on("turn", self._on_turn_event)
        bus.on("stop", self._on_stop_event)
        bus.on("delete", self._on_delete_event)

    async def publish_room(self, conversation_id: str, frame: str) -> None:
        """``frame`` to the conversation's viewers, here and on every other instance."""
        self.rooms.publish(conversation_id, frame)
        await self.bus.publish("room", conversation_id=conversation_id, frame=frame)

    async def publish_turn(self, conversation_id: str, frame: str, message_id: str) -> None:
        """Tell the other instances a reply started here (its user message ``frame``)."""
        await self.bus.publish(
            "turn", conversation_id=conversation_id, frame=frame, message_id=message_id
        )

    async def publish_delete(self, conversation_id: str, message_ids: list[str]) -> None:
        """The conversation was deleted: its viewers and reply logs go, here and elsewhere."""
        await self._deleted(conversation_id, message_ids)
        await self.bus.publish(
            "delete", conversation_id=conversation_id, message_ids=list(message_ids)
        )

    async def _deleted(self, conversation_id: str, message_ids: list[str]) -> None:
        for message_id in message_ids:
            reply = self.replies.get(message_id)
            if reply is not None and not reply.remote and not reply.ended:
                self.supervisor.stop_local(reply, "cancelled")
            with contextlib.suppress(StoreUnavailable):
                await self.replies.forget(message_id)
        viewers = list(self.rooms.viewers(conversation_id))
        if viewers:
            await asyncio.gather(
                *(conn.close_with(code=1000, reason=DELETED) for conn in viewers),
                return_exceptions=True,
            )

    async def _on_delete_event(self, event: Event) -> None:
        await self._deleted(str(event["conversation_id"]), [str(m) for m in event["message_ids"]])

    async def _on_room_event(self, event: Event) -> None:
        self.rooms.publish(str(event["conversation_id"]), str(event["frame"]))

    async def _on_turn_event(self, event: Event) -> None:
        """Another instance started a reply: its user message, then the reply, to viewers here."""
        conversation_id = str(event["conversation_id"])
        if event["frame"]:
            self.rooms.publish(conversation_id, str(event["frame"]))
        if not self.rooms.viewers(conversation_id):
            return  # nobody here watches that conversation: no mirror
        reply = await self.replies.find(str(event["message_id"]))
        if reply is not None:
            self.rooms.publish_reply(conversation_id, reply)

    async def _on_stop_event(self, event: Event) -> None:
        reply = self.replies.get(str(event["message_id"]))
        if reply is not None and not reply.remote:
            self.supervisor.stop_local(reply, str(event["finish_reason"]))


DELETED = "conversation deleted"  # the close reason a deleted conversation's viewers get
