"""Turns: what a ``message``, ``cancel``, ``resume`` or ``reset`` does to a conversation.

One reply runs per conversation at a time. A turn stores the user's message, creates
the reply's log, tells every viewer of the conversation (``user_message``, then the reply),
and starts one producer task that reads the upstream into the log
(:mod:`gateway.generation`). A ``message`` whose client id the conversation has seen
starts nothing: the sender follows the existing reply from its first step.

Stopping is explicit: ``cancel``, ``interrupt`` and ``reset`` end the log at once and
cancel its producer, which closes the upstream response. A closed socket only detaches
its viewer; a reply left with no viewer keeps running for ``limits.orphan_grace_s``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import structlog

from . import protocol
from .config import Config
from .connection import Connection
from .conversations import Conversation, ConversationStore, HistoryMessage, Status, new_id
from .errors import BadRequest, Busy, MessageTooLong, RateLimited, ResumeUnavailable
from .generation import produce
from .llm.events import ChatMessage, ChatRequest, Upstream
from .metrics import Metrics
from .ratelimits import RateLimiter
from .replies import ReplyLog, ReplyState, ReplyStore
from .rooms import Rooms

log = structlog.get_logger("gateway.chat")


@dataclass(slots=True)
class _Running:
    task: asyncio.Task[None]
    orphan_timer: asyncio.TimerHandle | None = None


class Chat:
    def __init__(
        self,
        config: Config,
        upstream: Upstream,
        conversations: ConversationStore,
        replies: ReplyStore,
        rooms: Rooms,
        rate_limiter: RateLimiter,
        metrics: Metrics,
    ) -> None:
        self.metrics = metrics
        self.config = config
        self.upstream = upstream
        self.conversations = conversations
        self.replies = replies
        self.rooms = rooms
        self.rate_limiter = rate_limiter
        self._running: dict[str, _Running] = {}
        self._per_user: dict[str, int] = {}

    # ---------------------------------------------------------------- client frames

    async def message(self, conn: Connection, conv: Conversation, msg: protocol.Message) -> None:
        limits = self.config.limits
        existing = conv.replies_by_client_id.get(msg.id)
        if existing is not None:
            reply = self.replies.get(existing)
            if reply is None:
                raise ResumeUnavailable("that message's reply is no longer available")
            conn.follow(reply, 0, resumed=True)
            return
        if len(msg.text) > limits.max_message_chars:
            raise MessageTooLong(
                f"the message has {len(msg.text)} characters; the limit is "
                f"{limits.max_message_chars}"
            )
        if conv.running is not None and not msg.interrupt:
            raise Busy()
        if self._per_user.get(conn.user, 0) >= limits.max_replies_per_user and not msg.interrupt:
            raise Busy("you have too many replies running; wait for one to finish")
        if not self.rate_limiter.allow(conn.user):
            raise RateLimited(
                f"more than {limits.messages_per_minute} messages a minute; slow down"
            )
        if conv.running is not None:
            running = self.replies.get(conv.running)
            if running is not None:
                self.stop(running, "interrupted")
            await self.conversations.end_reply(conv, conv.running)
        await self._start_turn(conn, conv, msg)

    async def cancel(self, conv: Conversation, message_id: str | None) -> None:
        if conv.running is None or (message_id and message_id != conv.running):
            return  # nothing to stop: idempotent
        reply = self.replies.get(conv.running)
        if reply is not None:
            self.stop(reply, "cancelled")

    def resume(self, conn: Connection, conv: Conversation, frame: protocol.Resume) -> None:
        reply = self.replies.get(frame.message_id)
        if reply is None or reply.conversation_id != conv.id:
            raise ResumeUnavailable("no such reply in this conversation, or it has expired")
        if frame.last_seq > reply.head:
            raise BadRequest(f"last_seq {frame.last_seq} is beyond the reply's {reply.head} steps")
        if not conn.follow(reply, frame.last_seq, resumed=True):
            raise BadRequest("this connection is already following that reply")
        self.metrics.resumes.inc()

    async def reset(self, conv: Conversation) -> None:
        if conv.running is not None:
            reply = self.replies.get(conv.running)
            if reply is not None:
                self.stop(reply, "cancelled")
        await self.conversations.clear(conv)
        self.rooms.publish(
            conv.id, protocol.encode({"type": "history_cleared", "conversation_id": conv.id})
        )

    # ---------------------------------------------------------------- replies

    def stop(self, reply: ReplyLog, finish_reason: str) -> None:
        """End a running reply now and close its upstream request."""
        reply.finish(ReplyState.CANCELLED, finish_reason)
        running = self._running.get(reply.message_id)
        if running is not None:
            running.task.cancel()

    async def _start_turn(
        self, conn: Connection, conv: Conversation, msg: protocol.Message
    ) -> None:
        assistant = self.config.assistants[conv.assistant]
        model = self.config.assistant_model(conv.assistant)
        now = time.time()
        user_msg = HistoryMessage(
            new_id("u"), "user", msg.text, "complete", now, user=conn.user, client_id=msg.id
        )
        reply = ReplyLog(
            message_id=new_id("m"),
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
        await self.conversations.add_message(conv, user_msg)
        await self.conversations.add_message(
            conv, HistoryMessage(reply.message_id, "assistant", "", "running", now)
        )
        await self.conversations.start_reply(conv, reply.message_id, msg.id)
        self.replies.add(reply)
        reply.on_orphaned = self._orphaned
        reply.on_adopted = self._adopted
        self.rooms.publish(
            conv.id,
            protocol.encode(
                {
                    "type": "user_message",
                    "id": msg.id,
                    "conversation_id": conv.id,
                    "user": conn.user,
                    "text": msg.text,
                    "ts": protocol.now_iso(),
                }
            ),
        )
        self.rooms.publish_reply(conv.id, reply)
        task = asyncio.create_task(
            self._run(conv, reply, request), name=f"reply {reply.message_id}"
        )
        self._running[reply.message_id] = _Running(task)
        self._per_user[reply.owner] = self._per_user.get(reply.owner, 0) + 1
        if reply.viewer_count == 0:
            self._orphaned(reply)

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
            await self.conversations.update_message(
                conv, reply.message_id, reply.text, _history_status(reply)
            )
            await self.conversations.end_reply(conv, reply.message_id)
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
            reply.orphaned = True
            self.stop(reply, "cancelled")

    async def drain(self, grace_s: float) -> None:
        """Shutdown: let running replies finish for up to ``grace_s``, then stop them."""
        tasks = [r.task for r in self._running.values()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)


def _min_tokens(a: int | None, b: int | None) -> int | None:
    if a is None or b is None:
        return a if b is None else b
    return min(a, b)


def _history_status(reply: ReplyLog) -> Status:
    match reply.state:
        case ReplyState.COMPLETED:
            return "complete" if reply.finish_reason == "stop" else "incomplete"
        case ReplyState.CANCELLED:
            return "incomplete" if reply.orphaned else "cancelled"
        case ReplyState.FAILED:
            return "failed"
        case _:
            return "running"
