"""Turns: what a ``message``, ``cancel``, ``resume`` or ``reset`` does to a conversation.

One reply runs per conversation at a time (decided by the store, atomically, so two
instances cannot both start one). A turn stores the user's message, creates the reply's
log, tells every viewer of the conversation (``user_message``, then the reply), here and,
through the event bus, on the other instances, and starts one producer task that reads the
upstream into the log (:mod:`gateway.generation`). A ``message`` whose client id the
conversation has seen starts nothing: the sender follows the existing reply from its first
step.

Stopping is explicit: ``cancel``, ``interrupt`` and ``reset`` end the log at once and
cancel its producer, which closes the upstream response; a reply produced on another
instance is stopped there (a ``stop`` event). A closed socket only detaches its viewer; a
reply left with no viewer anywhere keeps running for ``limits.orphan_grace_s``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import structlog

from . import protocol
from .config import Config
from .connection import Connection
from .conversations import Conversation, ConversationStore, HistoryMessage, Status, new_id
from .errors import (
    BadRequest,
    Busy,
    MessageTooLong,
    RateLimited,
    ResumeUnavailable,
    StoreUnavailable,
)
from .generation import produce
from .llm.events import ChatMessage, ChatRequest, Upstream
from .metrics import Metrics
from .replies import ReplyLog, ReplyState, ReplyStore
from .rooms import Rooms
from .stores.backends import Backends
from .stores.interfaces import Event

log = structlog.get_logger("gateway.chat")

SETTLE_RETRY_MAX_S = 5.0


@dataclass(slots=True)
class _Running:
    task: asyncio.Task[None]
    orphan_timer: asyncio.TimerHandle | None = None


class Chat:
    def __init__(
        self,
        config: Config,
        upstream: Upstream,
        backends: Backends,
        rooms: Rooms,
        metrics: Metrics,
        instance: str,
    ) -> None:
        self.metrics = metrics
        self.config = config
        self.upstream = upstream
        self.conversations: ConversationStore = backends.conversations
        self.replies: ReplyStore = backends.replies
        self.bus = backends.bus
        self.rate_limiter = backends.rate_limiter
        self.presence = backends.presence
        self.rooms = rooms
        self.instance = instance
        self._running: dict[str, _Running] = {}
        self._per_user: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.bus.on("room", self._on_room_event)
        self.bus.on("turn", self._on_turn_event)
        self.bus.on("stop", self._on_stop_event)

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
        existing = conv.replies_by_client_id.get(msg.id)
        if existing is not None:
            await self._follow_again(conn, existing)
            return
        if len(msg.text) > limits.max_message_chars:
            raise MessageTooLong(
                f"the message has {len(msg.text)} characters; the limit is "
                f"{limits.max_message_chars}"
            )
        if conv.running is not None and not msg.interrupt:
            raise Busy()
        running = self._per_user.get(conn.user, 0) + self.presence.replies_elsewhere(conn.user)
        if running >= limits.max_replies_per_user and not msg.interrupt:
            raise Busy("you have too many replies running; wait for one to finish")
        if not await self.rate_limiter.allow(conn.user):
            raise RateLimited(
                f"more than {limits.messages_per_minute} messages a minute; slow down"
            )
        message_id = new_id("m")
        claim = await self.conversations.claim_reply(
            conv, message_id, msg.id, self.instance, interrupt=msg.interrupt
        )
        if claim.outcome == "duplicate" and claim.previous is not None:
            await self._follow_again(conn, claim.previous)
            return
        if claim.outcome == "busy":
            raise Busy()
        if claim.previous is not None:
            if claim.stale:
                self._spawn(self._reap_stale(claim.previous))
            else:
                previous = await self.replies.find(claim.previous)
                if previous is not None:
                    await self.stop(previous, "interrupted")
        try:
            await self._start_turn(conn, conv, msg, message_id)
        except StoreUnavailable:
            self._spawn(self._settle(conv, message_id, None))  # free the conversation again
            raise

    async def _follow_again(self, conn: Connection, message_id: str) -> None:
        reply = await self.replies.find(message_id)
        if reply is None:
            raise ResumeUnavailable("that message's reply is no longer available")
        conn.follow(reply, 0, resumed=True)

    async def cancel(self, conv: Conversation, message_id: str | None) -> None:
        if conv.running is None or (message_id and message_id != conv.running):
            return  # nothing to stop: idempotent
        reply = await self.replies.find(conv.running)
        if reply is not None:
            await self.stop(reply, "cancelled")

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
        if conv.running is not None:
            reply = await self.replies.find(conv.running)
            if reply is not None:
                await self.stop(reply, "cancelled")
        await self.conversations.clear(conv)
        await self._publish_room(
            conv.id, protocol.encode({"type": "history_cleared", "conversation_id": conv.id})
        )

    # ---------------------------------------------------------------- the other instances

    async def _publish_room(self, conversation_id: str, frame: str) -> None:
        self.rooms.publish(conversation_id, frame)
        await self.bus.publish("room", conversation_id=conversation_id, frame=frame)

    async def _on_room_event(self, event: Event) -> None:
        self.rooms.publish(str(event["conversation_id"]), str(event["frame"]))

    async def _on_turn_event(self, event: Event) -> None:
        """Another instance started a reply: its user message, then the reply, to viewers here."""
        conversation_id = str(event["conversation_id"])
        self.rooms.publish(conversation_id, str(event["frame"]))
        if not self.rooms.viewers(conversation_id):
            return  # nobody here watches that conversation: no mirror
        reply = await self.replies.find(str(event["message_id"]))
        if reply is not None:
            self.rooms.publish_reply(conversation_id, reply)

    async def _on_stop_event(self, event: Event) -> None:
        reply = self.replies.get(str(event["message_id"]))
        if reply is not None and not reply.remote:
            self.stop_local(reply, str(event["finish_reason"]))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reap_stale(self, message_id: str) -> None:
        try:
            await self.replies.reap_stale(message_id)
        except StoreUnavailable:
            log.warning("stale reply not marked failed: store unavailable")

    # ---------------------------------------------------------------- replies

    async def stop(self, reply: ReplyLog, finish_reason: str) -> None:
        """End a running reply now and close its upstream request, wherever it runs."""
        if reply.remote:
            if not reply.ended:
                await self.bus.publish(
                    "stop", message_id=reply.message_id, finish_reason=finish_reason
                )
            return
        self.stop_local(reply, finish_reason)

    def stop_local(self, reply: ReplyLog, finish_reason: str) -> None:
        reply.finish(ReplyState.CANCELLED, finish_reason)
        running = self._running.get(reply.message_id)
        if running is not None:
            running.task.cancel()

    async def _start_turn(
        self, conn: Connection, conv: Conversation, msg: protocol.Message, message_id: str
    ) -> None:
        assistant = self.config.assistants[conv.assistant]
        model = self.config.assistant_model(conv.assistant)
        now = time.time()
        user_msg = HistoryMessage(
            new_id("u"), "user", msg.text, "complete", now, user=conn.user, client_id=msg.id
        )
        reply = ReplyLog(
            message_id=message_id,
            conversation_id=conv.id,
            owner=conn.user,
            reply_to=msg.id,
            model=model,
        )
        request = ChatRequest(
            model=model,
            messages=self._upstream_messages(conv, assistant.system_prompt, msg.text),
            temperature=msg.temperature if msg.temperature is not None else assistant.temperature,
            top_p=msg.top_p if msg.top_p is not None else assistant.top_p,
            max_tokens=_min_tokens(msg.max_tokens, assistant.max_tokens),
        )
        await self.conversations.add_messages(
            conv, user_msg, HistoryMessage(reply.message_id, "assistant", "", "running", now)
        )
        await self.replies.add(reply)  # in Redis before anyone is told of it
        reply.on_orphaned = self._orphaned
        reply.on_adopted = self._adopted
        user_message = protocol.encode(
            {
                "type": "user_message",
                "id": msg.id,
                "conversation_id": conv.id,
                "user": conn.user,
                "text": msg.text,
                "ts": protocol.now_iso(),
            }
        )
        # Viewers here first (the upstream request starts without waiting on Redis), then
        # the other instances, in the same order: the user's message, then the reply.
        self.rooms.publish(conv.id, user_message)
        self.rooms.publish_reply(conv.id, reply)
        task = asyncio.create_task(
            self._run(conv, reply, request), name=f"reply {reply.message_id}"
        )
        self._running[reply.message_id] = _Running(task)
        self._per_user[reply.owner] = self._per_user.get(reply.owner, 0) + 1
        if reply.viewer_count == 0:
            self._orphaned(reply)
        await self.bus.publish(
            "turn", conversation_id=conv.id, frame=user_message, message_id=reply.message_id
        )

    def _upstream_messages(
        self, conv: Conversation, system_prompt: str, text: str
    ) -> tuple[ChatMessage, ...]:
        """The system prompt, then as many past turns as fit the budget, then this turn."""
        budget = self.config.limits.history_budget_chars - len(text)
        past: list[ChatMessage] = []
        for message in reversed(conv.messages):
            if not message.content or message.status == "running":
                continue
            budget -= len(message.content)
            if budget < 0:
                break
            past.append(ChatMessage(message.role, message.content))
        past.reverse()
        head = (ChatMessage("system", system_prompt),) if system_prompt else ()
        return (*head, *past, ChatMessage("user", text))

    async def _run(self, conv: Conversation, reply: ReplyLog, request: ChatRequest) -> None:
        structlog.contextvars.clear_contextvars()  # this task's own copy: no connection_id
        bound_log = log.bind(conversation_id=conv.id, message_id=reply.message_id, user=reply.owner)
        self.metrics.replies_in_flight.inc()
        try:
            await produce(reply, self.upstream, request, self.config.limits.outbox_max_bytes)
        except asyncio.CancelledError:
            if not reply.ended:  # cancelled from outside (shutdown): keep what we have
                reply.finish(ReplyState.CANCELLED, "cancelled")
        finally:
            running = self._running.pop(reply.message_id, None)
            if running is not None and running.orphan_timer is not None:
                running.orphan_timer.cancel()
            self._per_user[reply.owner] -= 1
            if self._per_user[reply.owner] <= 0:
                del self._per_user[reply.owner]
            self.replies.ended(reply)
            self._observe(reply)
            bound_log.info(
                "reply",
                finish_reason=reply.finish_reason,
                state=str(reply.state),
                steps=reply.head,
                frames=reply.frames_sent,
                merged=reply.frames_merged,
                chars=reply.content_length,
                first_step_s=round(reply.first_step_at - reply.started_at, 4)
                if reply.first_step_at
                else None,
                seconds=round((reply.finished_at or time.time()) - reply.started_at, 3),
                upstream_request_id=reply.upstream_request_id,
                error=reply.error.code if reply.error else None,
            )
            await self._settle(conv, reply.message_id, reply)

    async def _settle(self, conv: Conversation, message_id: str, reply: ReplyLog | None) -> None:
        """Store the reply's final text and free the conversation, retrying while Redis is down."""
        delay = 0.1
        deadline = time.monotonic() + max(self.config.limits.resume_window_s, 1.0)
        while True:
            try:
                if reply is not None:
                    await self.conversations.update_message(
                        conv, message_id, reply.text, history_status(reply)
                    )
                await self.conversations.end_reply(conv, message_id)
                return
            except StoreUnavailable:
                if time.monotonic() > deadline:
                    log.error("reply not stored: the store stayed down", message_id=message_id)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, SETTLE_RETRY_MAX_S)

    def _observe(self, reply: ReplyLog) -> None:
        m = self.metrics
        m.replies_in_flight.dec()
        m.steps += reply.head
        m.replies.labels(reply.finish_reason or "error").inc()
        if reply.first_step_at is not None:
            m.time_to_first_delta.observe(reply.first_step_at - reply.started_at)
        if reply.finished_at is not None:
            m.reply_duration.observe(reply.finished_at - reply.started_at)
        if reply.error is not None:
            m.upstream_errors.labels(reply.error.code).inc()

    def _orphaned(self, reply: ReplyLog) -> None:
        running = self._running.get(reply.message_id)
        if running is None or running.orphan_timer is not None:
            return
        loop = asyncio.get_running_loop()
        running.orphan_timer = loop.call_later(
            self.config.limits.orphan_grace_s, self._orphan_expired, reply
        )

    def _adopted(self, reply: ReplyLog) -> None:
        running = self._running.get(reply.message_id)
        if running is not None and running.orphan_timer is not None:
            running.orphan_timer.cancel()
            running.orphan_timer = None

    def _orphan_expired(self, reply: ReplyLog) -> None:
        if reply.viewer_count == 0 and not reply.ended:
            self._spawn(self._orphan_check(reply))

    async def _orphan_check(self, reply: ReplyLog) -> None:
        running = self._running.get(reply.message_id)
        if running is None or reply.viewer_count or reply.ended:
            return
        if await self.replies.watched_elsewhere(reply.message_id):
            running.orphan_timer = None
            self._orphaned(reply)  # a viewer on another instance: another grace
            return
        reply.orphaned = True
        self.stop_local(reply, "cancelled")

    async def drain(self, grace_s: float) -> None:
        """Shutdown: let running replies finish for up to ``grace_s``, then stop them."""
        tasks = [r.task for r in self._running.values()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace_s)


def _min_tokens(a: int | None, b: int | None) -> int | None:
    if a is None or b is None:
        return a if b is None else b
    return min(a, b)


def history_status(reply: ReplyLog) -> Status:
    match reply.state:
        case ReplyState.COMPLETED:
            return "complete" if reply.finish_reason == "stop" else "incomplete"
        case ReplyState.CANCELLED:
            return "incomplete" if reply.orphaned else "cancelled"
        case ReplyState.FAILED:
            return "failed"
        case _:
            return "running"
