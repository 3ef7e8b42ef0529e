"""The reply supervisor: the reply tasks this instance runs, from start to settled.

Each reply runs as one task around :func:`gateway.producer.produce`. The supervisor counts
them per user, stops them (here, or through a ``stop`` event where another instance
produces the reply), gives a reply left with no viewer anywhere ``limits.orphan_grace_s``
before stopping it, and at shutdown lets them finish for a grace before cutting them. When
a reply ends, it observes the metrics, logs the reply's one summary line, and settles it:
the final text into history and the conversation's claim freed, retried while the store is
down; then it records the reply's usage (the usage store and the token counters).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from .config import Config
from .conversations import Conversation
from .errors import StoreUnavailable, failure_fields
from .llm.events import ChatRequest, Upstream
from .metrics import Metrics
from .producer import produce
from .replies import ReplyLog, ReplyState
from .send_policy import SendPolicy
from .stores.backends import Backends
from .stores.conversations import ConversationStore
from .stores.replies import ReplyStore
from .stores.turn_writes import TurnWrites
from .stores.usage import UsageStore
from .tasks import RECANCEL_S, TaskOwner, cancel_and_wait
from .turn_rules import history_status
from .upstream_queue import Slot
from .usage import UsageRecord, count_tokens, estimated_usage, utc_day

log = structlog.get_logger("gateway.supervisor")

SETTLE_RETRY_MAX_S = 5.0


@dataclass(slots=True)
class _Running:
    """A reply task this instance runs, and its orphan timer while no viewer watches."""

    task: asyncio.Task[None]
    request: ChatRequest
    orphan_timer: asyncio.TimerHandle | None = None


class ReplySupervisor:
    """Owns this instance's reply tasks.

    Contract: :meth:`start` runs a reply's producer as a task and, whatever way the task
    ends (finished, failed, stopped, cancelled), settles the reply exactly once: history
    gets its final text and status, the conversation's claim is freed (retried for as long
    as the store is down), metrics and the one ``reply`` log line are written. A reply
    with no viewer anywhere is stopped after ``limits.orphan_grace_s``. :meth:`drain`
    returns only once every reply task and every task spawned here has ended (or the grace
    has run out for the spawned ones).
    """

    def __init__(
        self,
        config: Config,
        upstream: Upstream,
        backends: Backends,
        metrics: Metrics,
        *,
        upstreams: Mapping[str, Upstream] | None = None,
    ) -> None:
        self.config = config
        self.upstream = upstream
        self.upstreams: Mapping[str, Upstream] = upstreams or {}  # per assistant (pools)
        self.metrics = metrics
        self.conversations: ConversationStore = backends.conversations
        self.replies: ReplyStore = backends.replies
        self.bus = backends.bus
        self.usage: UsageStore = backends.usage
        self.turn_writes: TurnWrites = backends.turn_writes
        self._running: dict[str, _Running] = {}
        self._per_user: dict[str, int] = {}
        self._tasks = TaskOwner()  # settles without a reply task, reaps, orphan checks

    # ---------------------------------------------------------------- starting

    def start(
        self,
        conv: Conversation,
        reply: ReplyLog,
        request: ChatRequest,
        *,
        address: str | None = None,
        slot: Slot | None = None,
    ) -> None:
        """Run ``reply``'s producer for ``request``; from here on the task settles it.
        ``address``: an anonymous sender's client address (its usage counts there too);
        ``slot``: its place under ``upstream.max_concurrent``, released when it ends.
        Viewers see the reply's end once it is settled."""
        reply.hold_end()
        reply.watch(on_orphaned=self._orphaned, on_adopted=self._adopted)
        task = asyncio.create_task(
            self._run(conv, reply, request, address, slot), name=f"reply {reply.message_id}"
        )
        self._running[reply.message_id] = _Running(task, request)
        self._per_user[reply.owner] = self._per_user.get(reply.owner, 0) + 1
        if reply.viewer_count == 0:
            self._orphaned(reply)

    def running_for(self, user: str) -> int:
        """How many replies of ``user`` run on this instance."""
        return self._per_user.get(user, 0)

    def runs(self, message_id: str) -> bool:
        """A task runs (and will settle) that reply here."""
        return message_id in self._running

    # ---------------------------------------------------------------- stopping

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
        """End a reply produced here and cancel its task (which closes the upstream)."""
        running = self._running.get(reply.message_id)
        usage = None if running is None else estimated_usage(running.request, reply.text)
        reply.finish(ReplyState.CANCELLED, finish_reason, usage=usage)
        if running is not None:
            running.task.cancel()

    async def drain(self, grace_s: float) -> None:
        """Shutdown: let running replies finish for up to ``grace_s``, then stop them (the
        gateway cut them, not a user: history keeps them as ``incomplete``); a reply still
        writing that after another ``grace_s`` (1 s at least) is cut there. Then the tasks
        spawned here get ``grace_s`` and are cancelled."""
        tasks = [r.task for r in self._running.values()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            for message_id, running in list(self._running.items()):
                reply = self.replies.get(message_id)
                if running.task in pending and reply is not None and not reply.ended:
                    reply.mark_cut_at_shutdown()
                    usage = estimated_usage(running.request, reply.text)
                    reply.finish(ReplyState.CANCELLED, "cancelled", usage=usage)
            # A cut reply writes its end to history as it stops: cancelled again (the
            # write abandoned) only if that takes longer than the grace again.
            await cancel_and_wait(pending, recancel_s=max(grace_s, RECANCEL_S))
        await self._tasks.aclose(grace_s)

    # ---------------------------------------------------------------- claims without a task

    async def release(self, conv: Conversation, message_id: str) -> None:
        """Free a claim no task will settle: at once, or from a task that retries while the
        store is down."""
        try:
            await self.conversations.end_reply(conv, message_id)
        except StoreUnavailable:
            self.release_later(conv, message_id)

    def release_later(self, conv: Conversation, message_id: str) -> None:
        """Free a claim no task will settle, from a task (for callers that may not await)."""
        self._tasks.spawn(self._settle(conv, message_id, None), "settle")

    def reap_stale_later(self, message_id: str) -> None:
        """Mark failed, from a task, a reply whose instance died while producing it."""
        self._tasks.spawn(self._reap_stale(message_id), "reap stale")

    async def _reap_stale(self, message_id: str) -> None:
        try:
            await self.replies.reap_stale(message_id)
        except StoreUnavailable:
            log.warning("stale reply not marked failed: store unavailable")

    # ---------------------------------------------------------------- the reply task

    async def _run(
        self,
        conv: Conversation,
        reply: ReplyLog,
        request: ChatRequest,
        address: str | None,
        slot: Slot | None,
    ) -> None:
        structlog.contextvars.clear_contextvars()  # this task's own copy: no connection_id
        bound_log = log.bind(conversation_id=conv.id, message_id=reply.message_id, user=reply.owner)
        self.metrics.replies_in_flight.inc()
        try:
            bound = SendPolicy.from_limits(self.config.limits).producer_bound
            assistant = self.config.assistants.get(conv.assistant)
            show_reasoning = assistant is None or assistant.show_reasoning
            upstream = self.upstreams.get(conv.assistant, self.upstream)
            await produce(reply, upstream, request, bound, show_reasoning=show_reasoning)
        except asyncio.CancelledError:
            if not reply.ended:  # cancelled from outside (shutdown): keep what we have
                usage = estimated_usage(request, reply.text)
                reply.finish(ReplyState.CANCELLED, "cancelled", usage=usage)
        finally:
            try:
                if slot is not None:
                    await slot.release()
                running = self._running.pop(reply.message_id, None)
                if running is not None and running.orphan_timer is not None:
                    running.orphan_timer.cancel()
                self._per_user[reply.owner] -= 1
                if self._per_user[reply.owner] <= 0:
                    del self._per_user[reply.owner]
                self.replies.expire_later(reply)
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
                    **failure_fields(reply.error),
                )
            finally:  # the conversation is freed whatever the bookkeeping did
                try:
                    # With its usage, before `done` is shown: the next turn's quota check
                    # counts this reply.
                    record = self._usage_record(reply, conv.assistant, address)
                    await self._settle(conv, reply.message_id, reply, record)
                finally:  # `done` only now: the next message finds the conversation free
                    reply.release_end()

    def _usage_record(
        self, reply: ReplyLog, assistant: str, address: str | None
    ) -> UsageRecord | None:
        """The reply's usage for its day (quotas read it), added to the token counters now;
        None (logged) if it cannot be made."""
        try:
            record = UsageRecord.of(
                reply.usage,
                model=reply.model,
                assistant=assistant,
                user=reply.owner,
                day=utc_day(reply.finished_at),
                address=address,
            )
            count_tokens(self.metrics, record)
        except Exception:
            log.exception("usage not recorded", message_id=reply.message_id)
            return None
        return record

    async def _settle(
        self,
        conv: Conversation,
        message_id: str,
        reply: ReplyLog | None,
        usage: UsageRecord | None = None,
    ) -> None:
        """Store the reply's final text and free the conversation, with the reply's
        ``usage`` when given (one step of the turn-writes seam), retrying while Redis is down.

        The text is given up after ``limits.resume_window_s`` of outage, or on an unexpected
        error (the usage too); freeing the conversation is retried for as long as the store
        stays down (its claim would otherwise answer ``busy`` for as long as this instance
        lives), with the usage, which counts once however often it is sent.
        """
        delay = 0.1
        deadline = time.monotonic() + max(self.config.limits.resume_window_s, 1.0)
        text = reply
        while True:
            try:
                final = None
                if text is not None:
                    status = history_status(
                        text.state, text.finish_reason, text.orphaned, text.cut_at_shutdown
                    )
                    final = (text.text, status, text.reasoning)
                if usage is not None:
                    await self.turn_writes.settle_and_record(conv, message_id, final, usage)
                else:
                    await self.conversations.settle_reply(conv, message_id, final)
                return
            except StoreUnavailable:
                if text is not None and time.monotonic() > deadline:
                    log.error("reply not stored: the store stayed down", message_id=message_id)
                    text = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, SETTLE_RETRY_MAX_S)
            except Exception:
                log.exception("reply not settled", message_id=message_id)
                if text is None and usage is None:
                    return  # freeing itself failed: a bug no retry mends
                text, usage = None, None  # still free the conversation

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

    # ---------------------------------------------------------------- orphan grace

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
            self._tasks.spawn(self._orphan_check(reply), "orphan check")

    async def _orphan_check(self, reply: ReplyLog) -> None:
        running = self._running.get(reply.message_id)
        if running is None or reply.viewer_count or reply.ended:
            return
        if await self.replies.watched_elsewhere(reply.message_id):
            running.orphan_timer = None
            self._orphaned(reply)  # a viewer on another instance: another grace
            return
        reply.mark_orphaned()
        self.stop_local(reply, "cancelled")

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a task that :meth:`drain` gives the grace (a turn waiting for its
        place upstream, ``Turns``)."""
        return self._tasks.spawn(coro, name)
