"""The reply supervisor: the reply tasks this instance runs, from start to settled.

Each reply runs as one task around :func:`gateway.producer.produce`. The supervisor counts
them per user, stops them (here, or through a ``stop`` event where another instance
produces the reply), gives a reply left with no viewer anywhere ``limits.orphan_grace_s``
before stopping it, and at shutdown lets them finish for a grace before cutting them. When
a reply ends, it observes the metrics, logs the reply's one summary line, and settles it:
the final text into history and the conversation's claim freed, retried while the store is
down; then it records the reply's usage (the usage store and the token counters).

The pieces it delegates to: :class:`~gateway.orphans.OrphanGrace` (the orphan timers),
:class:`~gateway.settlement.Settlement` (the store's side of the end) and
:mod:`gateway.reply_report` (metrics, usage record, the summary line).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from .config import Config
from .conversations import Conversation
from .errors import StoreUnavailable
from .llm.events import ChatRequest, Upstream
from .metrics import Metrics
from .orphans import OrphanGrace
from .producer import produce
from .replies import ReplyLog, ReplyState
from .reply_report import observe, summary_fields, usage_record
from .send_policy import SendPolicy
from .settlement import Settlement
from .stores.backends import Backends
from .stores.conversations import ConversationStore
from .stores.replies import ReplyStore
from .stores.turn_writes import TurnWrites
from .stores.usage import UsageStore
from .tasks import RECANCEL_S, TaskOwner, cancel_and_wait
from .upstream_queue import Slot
from .usage import estimated_usage

log = structlog.get_logger("gateway.supervisor")


@dataclass(slots=True)
class _Running:
    """A reply task this instance runs, and the request it sent upstream."""

    task: asyncio.Task[None]
    request: ChatRequest


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
        self._settlement = Settlement(
            self.conversations, self.turn_writes, config.limits.resume_window_s
        )
        self._orphans = OrphanGrace(
            config.limits.orphan_grace_s,
            self.replies,
            self._tasks,
            runs=self.runs,
            stop=self.stop_local,
        )

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
        reply.watch(on_orphaned=self._orphans.orphaned, on_adopted=self._orphans.adopted)
        task = asyncio.create_task(
            self._run(conv, reply, request, address, slot), name=f"reply {reply.message_id}"
        )
        self._running[reply.message_id] = _Running(task, request)
        self._per_user[reply.owner] = self._per_user.get(reply.owner, 0) + 1
        if reply.viewer_count == 0:
            self._orphans.orphaned(reply)

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
        self._tasks.spawn(self._settlement.settle(conv, message_id, None), "settle")

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
                self._running.pop(reply.message_id, None)
                self._orphans.forget(reply.message_id)
                self._per_user[reply.owner] -= 1
                if self._per_user[reply.owner] <= 0:
                    del self._per_user[reply.owner]
                self.replies.expire_later(reply)
                observe(self.metrics, reply)
                bound_log.info("reply", **summary_fields(reply))
            finally:  # the conversation is freed whatever the bookkeeping did
                try:
                    # With its usage, before `done` is shown: the next turn's quota check
                    # counts this reply.
                    record = usage_record(self.metrics, reply, conv.assistant, address)
                    await self._settlement.settle(conv, reply.message_id, reply, record)
                finally:  # `done` only now: the next message finds the conversation free
                    reply.release_end()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a task that :meth:`drain` gives the grace (a turn waiting for its
        place upstream, ``Turns``)."""
        return self._tasks.spawn(coro, name)
