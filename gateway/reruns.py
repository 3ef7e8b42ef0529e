"""Reruns: what a ``regenerate`` or an ``edit`` does to a conversation's history.

A ``regenerate`` asks the last user message again: the reply it replaces stays in history,
marked ``replaced``, and the new one follows it. An ``edit`` gives a user message new text:
what followed it is dropped and a reply to the new text starts. Either passes the same
admission and upstream line as a ``message``, and asks the message again with its images.

Who may rerun what, and when, is :func:`gateway.turn_rules.decide_regenerate` and
:func:`~gateway.turn_rules.decide_edit` (pure).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

from . import protocol
from .admission import TurnAdmission
from .cluster import ClusterEvents
from .config import Config, LimitsConfig
from .connection import Connection
from .conversations import Conversation, HistoryMessage, new_id
from .errors import Busy
from .message_images import MessageImages
from .replies import ReplyLog
from .rooms import Rooms
from .stores.conversations import ConversationStore
from .stores.replies import ReplyStore
from .supervisor import ReplySupervisor
from .turn_rules import (
    Refuse,
    Rerun,
    decide_edit,
    decide_regenerate,
    upstream_messages,
    upstream_request,
)
from .upstream_queue import Slot
from .waiting_turns import WaitingTurns


class _Asking(TypedDict):
    """The arguments :func:`~gateway.turn_rules.decide_regenerate` and
    :func:`~gateway.turn_rules.decide_edit` share."""

    history: Sequence[HistoryMessage]
    running: str | None
    user_running: int
    limits: LimitsConfig
    user: str
    owner: str
    admin: bool


@dataclass(eq=False, slots=True)
class Reruns:
    """The I/O shell for ``regenerate`` and ``edit``.

    Contract: it asks the rules what the frame does and raises their refusal, or admits and
    claims the turn (a busy claim raises :class:`~gateway.errors.Busy`; the claim's client
    id is the new reply's own, so a rerun is never a duplicate of a message) and starts it
    now or in the upstream line. History is not touched before the turn starts; then it
    changes first (a regenerate marks the reply it replaces ``replaced`` and adds the new
    one; an edit replaces the message and drops what followed it), then the reply's log is
    added, then the viewers here and on the other instances are told. A claim it takes is
    freed if no reply starts.
    """

    config: Config
    conversations: ConversationStore
    replies: ReplyStore
    rooms: Rooms
    supervisor: ReplySupervisor
    cluster: ClusterEvents
    admission: TurnAdmission
    waiting: WaitingTurns
    message_images: MessageImages

    async def regenerate(self, conn: Connection, conv: Conversation) -> None:
        """A new reply to the last user message; the reply it replaces stays, ``replaced``."""
        plan = decide_regenerate(**self._asking(conn, conv))
        await self._rerun(conn, conv, plan, edited_as=None)

    async def edit(self, conn: Connection, conv: Conversation, frame: protocol.Edit) -> None:
        """A user message's new text; what followed it is dropped and a reply starts."""
        plan = decide_edit(message_id=frame.message_id, text=frame.text, **self._asking(conn, conv))
        await self._rerun(conn, conv, plan, edited_as=frame.message_id)

    def _asking(self, conn: Connection, conv: Conversation) -> _Asking:
        """What both rules weigh: the conversation's history and running reply, the
        sender's replies running anywhere, the limits, and who asks."""
        return _Asking(
            history=conv.messages,
            running=conv.running,
            user_running=self.admission.user_running(conn.user),
            limits=self.config.limits,
            user=conn.user,
            owner=conv.owner,
            admin=conn.admin,
        )

    async def _rerun(
        self, conn: Connection, conv: Conversation, plan: Rerun | Refuse, edited_as: str | None
    ) -> None:
        if isinstance(plan, Refuse):
            raise plan.error
        message_id = new_id("m")
        # The claim's client id is the reply's own: a redo is never a duplicate of a message.
        claim = await self.admission.admit_and_claim(conn, conv, message_id, message_id, False)
        if claim.outcome != "started":
            raise Busy()
        try:
            if claim.previous is not None and claim.stale:
                self.supervisor.reap_stale_later(claim.previous)
            start = functools.partial(self._start_rerun, conn, conv, plan, message_id, edited_as)
            await self.waiting.start_or_wait(
                conn, conv, message_id, _asked_reply_to(conv, plan), start
            )
        except BaseException as exc:
            await self.admission.release_unstarted(conv, message_id, exc)
            raise

    async def _start_rerun(
        self,
        conn: Connection,
        conv: Conversation,
        plan: Rerun,
        message_id: str,
        edited_as: str | None,
        *,
        slot: Slot | None = None,
    ) -> None:
        """Start the reply a ``regenerate`` (``edited_as`` None) or an ``edit`` (the id the
        client named the message by) planned: history first, then the viewers, as a turn."""
        assistant = self.config.assistants[conv.assistant]
        model = self.config.assistant_model(conv.assistant)
        now = time.time()
        asked = conv.messages[plan.index]
        history = conv.messages[: plan.index]
        budget = self.config.limits.history_budget_chars
        asked_images = await self.message_images.of(asked)  # asked again with them
        reply = ReplyLog(
            message_id=message_id,
            conversation_id=conv.id,
            owner=conn.user,
            reply_to=_asked_reply_to(conv, plan),
            model=model,
        )
        request = upstream_request(
            assistant,
            model,
            upstream_messages(
                history,
                assistant.system_prompt,
                plan.text,
                budget,
                asked_images,
                await self.message_images.past(conv, plan.text, asked_images, budget, history),
            ),
        )
        placeholder = HistoryMessage(message_id, "assistant", "", "running", now)
        user_message = ""
        if edited_as is None:
            old = next((m for m in conv.messages if m.id == plan.replaces), None)
            if old is not None:
                await self.conversations.update_message(conv, old.id, old.content, "replaced")
            await self.conversations.add_messages(conv, placeholder)
        else:
            edited = HistoryMessage(
                asked.id,
                "user",
                plan.text,
                "complete",
                asked.created_at,
                user=asked.user,
                client_id=asked.client_id,
                images=asked.images,
            )
            await self.conversations.replace_tail(conv, plan.index, edited, placeholder)
            user_message = protocol.user_message_frame(
                id=edited_as,
                conversation_id=conv.id,
                user=conn.public_user or conn.user,
                text=plan.text,
            )
        await self.replies.add(reply)  # in Redis before anyone is told of it
        if user_message:
            self.rooms.publish(conv.id, user_message)
        self.rooms.publish_reply(conv.id, reply)
        self.supervisor.start(conv, reply, request, address=conn.address, slot=slot)
        await self.cluster.publish_turn(conv.id, user_message, reply.message_id)


def _asked_reply_to(conv: Conversation, plan: Rerun) -> str:
    """The ``reply_to`` of a rerun's frames: the client id of the user message it answers
    (its history id when it has none)."""
    asked = conv.messages[plan.index]
    return asked.client_id or asked.id
