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

The decisions are :mod:`gateway.turn_rules` (pure); admission and the claim are
:mod:`gateway.admission`'s, the wait for a place upstream :mod:`gateway.waiting_turns`',
``regenerate`` and ``edit`` :mod:`gateway.reruns`', a message's images
:mod:`gateway.message_images`'; the reply tasks are
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
from .reruns import Reruns
from .rooms import Rooms
from .stores.backends import Backends
from .stores.conversations import ConversationStore
from .stores.replies import ReplyStore
from .stores.turn_writes import TurnWrites
from .supervisor import ReplySupervisor
from .turn_rules import (
    Follow,
    Refuse,
    decide_message,
    upstream_messages,
    upstream_request,
)
from .upstream_queue import Slot
from .waiting_turns import WaitingTurns


class Turns:
    """The thin shell the session calls for a conversation's client frames (message,
    cancel, resume, reset, regenerate, edit) and for deleting a conversation.

    Contract: a ``message`` is asked of :func:`~gateway.turn_rules.decide_message`, its
    images checked (:class:`~gateway.message_images.MessageImages`), then it is admitted
    and claimed (:class:`~gateway.admission.TurnAdmission`; the store's claim has the last
    word on busy and duplicate ids) and started now or once it has its place upstream
    (:class:`~gateway.waiting_turns.WaitingTurns`, never in the caller): history, the
    reply's log and the other instances' event in one step, then the viewers here; a
    started reply belongs to the supervisor from then on. ``regenerate`` and ``edit`` are
    :class:`~gateway.reruns.Reruns`'. ``cancel``, an interrupt and ``reset`` take a waiting
    turn out of the line, or stop the running reply. A claim taken is never left behind:
    if anything fails before the supervisor holds the reply, it is freed. Errors raised
    are :class:`~gateway.errors.GatewayError`\\ s for the sender.
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
        self.reruns = Reruns(
            config,
            self.conversations,
            self.replies,
            rooms,
            supervisor,
            cluster,
            self.admission,
            self.waiting,
            self.message_images,
        )

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
        """A new reply to the last user message (:class:`~gateway.reruns.Reruns`)."""
        await self.reruns.regenerate(conn, conv)

    async def edit(self, conn: Connection, conv: Conversation, frame: protocol.Edit) -> None:
        """A user message's new text and a new reply (:class:`~gateway.reruns.Reruns`)."""
        await self.reruns.edit(conn, conv, frame)

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
