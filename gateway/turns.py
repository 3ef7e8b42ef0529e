"""Turns: what a ``message``, ``cancel``, ``resume``, ``reset``, ``regenerate`` or ``edit``
does to a conversation, and deleting one.

One reply runs per conversation at a time (decided by the store, atomically, so two
instances cannot both start one). A turn stores the user's message, creates the reply's
log, tells every viewer of the conversation (``user_message``, then the reply), here and,
through the event bus, on the other instances, and hands the reply to the supervisor, which
runs the producer task that reads the upstream into the log (:mod:`gateway.producer`). A
``message`` whose client id the conversation has seen starts nothing: the sender follows
the existing reply from its first step.

Stopping is explicit: ``cancel``, ``interrupt`` and ``reset`` end the log at once and
cancel its producer, which closes the upstream response; a reply produced on another
instance is stopped there (a ``stop`` event). A closed socket only detaches its viewer; a
reply left with no viewer anywhere keeps running for ``limits.orphan_grace_s``.

The decisions are :mod:`gateway.turn_rules` (pure); the reply tasks are
:class:`~gateway.supervisor.ReplySupervisor`'s; the events to and from the other
instances are :class:`~gateway.cluster.ClusterEvents`'.
"""

from __future__ import annotations

import functools
import time

from . import protocol
from .admission import TurnAdmission
from .cluster import ClusterEvents
from .config import Config
from .connection import Connection
from .conversations import Conversation, HistoryMessage, new_id
from .errors import BadRequest, Busy, ResumeUnavailable
from .llm.events import Image
from .message_images import MessageImages
from .metrics import Metrics
from .replies import ReplyLog
from .rooms import Rooms
from .stores.backends import Backends
from .stores.conversations import ConversationStore
from .stores.replies import ReplyStore
from .stores.turn_writes import TurnWrites
from .supervisor import ReplySupervisor
from .turn_rules import (
    Follow,
    Refuse,
    Rerun,
    decide_edit,
    decide_message,
    decide_regenerate,
    upstream_messages,
    upstream_request,
)
from .upstream_queue import Slot
from .waiting_turns import WaitingTurns


class Turns:
    """The I/O shell for a conversation's client frames (message, cancel, resume, reset,
    regenerate, edit) and for deleting a conversation.

    Contract: it asks :func:`~gateway.turn_rules.decide_message` what a message does, then
    applies the answer: :class:`~gateway.admission.TurnAdmission` (the rate limit, the
    anonymous limit per client address, the daily quotas and the store's atomic claim,
    which has the last word on busy and duplicate ids), history, the reply's log, the
    viewers here and elsewhere; a started reply belongs to the supervisor from then on. A
    claim it takes is never left behind: if anything fails before the supervisor holds the
    reply, the claim is freed. With ``upstream.max_concurrent`` a claimed turn waits for its
    place in a task (never in the caller, :class:`~gateway.waiting_turns.WaitingTurns`),
    sending ``queued`` frames; ``cancel`` takes it out of line.
    Errors raised are :class:`~gateway.errors.GatewayError`\\ s for the sender.
    """

    def __init__(
        self,
        config: Config,
        backends: Backends,
        rooms: Rooms,
        supervisor: ReplySupervisor,
        cluster: ClusterEvents,
        metrics: Metrics,
        instance: str,
    ) -> None:
        self.config = config
        self.conversations: ConversationStore = backends.conversations
        self.replies: ReplyStore = backends.replies
        self.turn_writes: TurnWrites = backends.turn_writes
        self.admission = TurnAdmission(
            config, backends.turn_writes, backends.presence, supervisor, metrics, instance
        )
        self.waiting = WaitingTurns(config, backends.upstream_queue, supervisor)
        self.message_images = MessageImages(config, backends.images)
        self.rooms = rooms
        self.supervisor = supervisor
        self.cluster = cluster
        self.metrics = metrics

    async def refresh(self, conv: Conversation) -> Conversation:
        """The conversation as shared state has it now (another instance may have changed it)."""
        fresh = await self.conversations.get(conv.id)
        if fresh is None:  # forgotten while empty by another instance: make it again
            fresh = await self.conversations.create(
                conv.id, conv.owner, conv.session_type, conv.assistant
            )
            for member in conv.members - fresh.members:
                await self.conversations.join(fresh, member)
        return fresh

    # ---------------------------------------------------------------- client frames

    async def message(self, conn: Connection, conv: Conversation, msg: protocol.Message) -> None:
        limits = self.config.limits
        decision = decide_message(
            client_id=msg.id,
            text=msg.text,
            interrupt=msg.interrupt,
            running=conv.running,
            seen=conv.replies_by_client_id,
            user_running=self.admission.user_running(conn.user),
            limits=limits,
        )
        if isinstance(decision, Follow):
            await self._follow_again(conn, decision.message_id)
            return
        if isinstance(decision, Refuse):
            raise decision.error
        # Checked (and decoded, once) before anything is spent on the turn.
        images = await self.message_images.checked(conv, msg)
        message_id = new_id("m")
        claim = await self.admission.admit_and_claim(conn, conv, message_id, msg.id, msg.interrupt)
        if claim.outcome == "duplicate" and claim.previous is not None:
            await self._follow_again(conn, claim.previous)
            return
        if claim.outcome == "busy":
            raise Busy()
        try:
            if claim.previous is not None:
                if claim.stale:
                    self.supervisor.reap_stale_later(claim.previous)
                elif not self.waiting.leave(claim.previous):  # (one in line just leaves)
                    previous = await self.replies.find(claim.previous)
                    if previous is not None:
                        await self.supervisor.stop(previous, "interrupted")
            start = functools.partial(self._start_turn, conn, conv, msg, message_id, images)
            await self.waiting.start_or_wait(conn, conv, message_id, msg.id, start)
        except BaseException as exc:
            await self.admission.release_unstarted(conv, message_id, exc)
            raise

    async def regenerate(self, conn: Connection, conv: Conversation) -> None:
        """A new reply to the last user message; the reply it replaces stays, ``replaced``."""
        plan = decide_regenerate(
            history=conv.messages,
            running=conv.running,
            user_running=self.admission.user_running(conn.user),
            limits=self.config.limits,
            user=conn.user,
            owner=conv.owner,
            admin=conn.admin,
        )
        await self._rerun(conn, conv, plan, edited_as=None)

    async def edit(self, conn: Connection, conv: Conversation, frame: protocol.Edit) -> None:
        """A user message's new text; what followed it is dropped and a reply starts."""
        plan = decide_edit(
            history=conv.messages,
            message_id=frame.message_id,
            text=frame.text,
            running=conv.running,
            user_running=self.admission.user_running(conn.user),
            limits=self.config.limits,
            user=conn.user,
            owner=conv.owner,
            admin=conn.admin,
        )
        await self._rerun(conn, conv, plan, edited_as=frame.message_id)

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

    async def _follow_again(self, conn: Connection, message_id: str) -> None:
        reply = await self.replies.find(message_id)
        if reply is None:
            raise ResumeUnavailable("that message's reply is no longer available")
        conn.follow(reply, 0, resumed=True)

    async def cancel(self, conv: Conversation, message_id: str | None) -> None:
        if conv.running is None or (message_id and message_id != conv.running):
            return  # nothing to stop: idempotent
        if self.waiting.leave(conv.running):  # still in line for the upstream: it left
            return
        reply = await self.replies.find(conv.running)
        if reply is not None:
            await self.supervisor.stop(reply, "cancelled")

    async def resume(self, conn: Connection, conv: Conversation, frame: protocol.Resume) -> None:
        reply = await self.replies.find(frame.message_id)
        if reply is None or reply.conversation_id != conv.id:
            raise ResumeUnavailable("no such reply in this conversation, or it has expired")
        if frame.last_seq > reply.head and (reply.ended or not reply.remote):
            # (A mirror may lag the producer by a moment: its reader waits for the steps.)
            raise BadRequest(f"last_seq {frame.last_seq} is beyond the reply's {reply.head} steps")
        if not conn.follow(reply, frame.last_seq, resumed=True):
            raise BadRequest("this connection is already following that reply")
        self.metrics.resumes.inc()

    async def reset(self, conv: Conversation) -> None:
        if conv.running is not None and not self.waiting.leave(conv.running):
            reply = await self.replies.find(conv.running)
            if reply is not None:
                await self.supervisor.stop(reply, "cancelled")
        await self.conversations.clear(conv)
        await self.message_images.drop(conv)
        await self.cluster.publish_room(conv.id, protocol.history_cleared_frame(conv.id))

    async def delete(self, conv: Conversation) -> None:
        """Delete the conversation everywhere: its running reply stops, its history, images
        and replies' resume data go, and its viewers on every instance are closed."""
        message_ids = [m.id for m in conv.messages if m.role == "assistant"]
        if conv.running is not None and conv.running not in message_ids:
            message_ids.append(conv.running)
        if conv.running is not None:
            reply = await self.replies.find(conv.running)
            if reply is not None:
                await self.supervisor.stop(reply, "cancelled")
        await self.conversations.delete(conv)
        await self.message_images.drop(conv)
        await self.cluster.publish_delete(conv.id, message_ids)

    # ---------------------------------------------------------------- starting a reply

    async def _start_turn(
        self,
        conn: Connection,
        conv: Conversation,
        msg: protocol.Message,
        message_id: str,
        images: tuple[Image, ...] = (),
        *,
        slot: Slot | None = None,
    ) -> None:
        assistant = self.config.assistants[conv.assistant]
        model = self.config.assistant_model(conv.assistant)
        now = time.time()
        budget = self.config.limits.history_budget_chars
        refs = await self.message_images.keep(conv, images)
        user_msg = HistoryMessage(
            new_id("u"),
            "user",
            msg.text,
            "complete",
            now,
            user=conn.user,
            client_id=msg.id,
            images=refs,
        )
        reply = ReplyLog(
            message_id=message_id,
            conversation_id=conv.id,
            owner=conn.user,
            reply_to=msg.id,
            model=model,
        )
        request = upstream_request(
            assistant,
            model,
            upstream_messages(
                conv.messages,
                assistant.system_prompt,
                msg.text,
                budget,
                images,
                await self.message_images.past(conv, msg.text, images, budget),
            ),
            temperature=msg.temperature,
            top_p=msg.top_p,
            max_tokens=msg.max_tokens,
        )
        user_message = protocol.user_message_frame(
            id=msg.id,
            conversation_id=conv.id,
            user=conn.public_user or conn.user,
            text=msg.text,
            images=[ref.public() for ref in refs],
        )
        placeholder = HistoryMessage(reply.message_id, "assistant", "", "running", now)
        # History, the reply's header (in Redis before anyone is told of it) and the other
        # instances' event, in one step; then the viewers here, in the same order: the
        # user's message, then the reply.
        await self.turn_writes.start_reply(conv, (user_msg, placeholder), reply, user_message)
        self.rooms.publish(conv.id, user_message)
        self.rooms.publish_reply(conv.id, reply)
        self.supervisor.start(conv, reply, request, address=conn.address, slot=slot)

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
