"""The orphan grace: a reply this instance produces, left with no viewer anywhere, runs on
for ``limits.orphan_grace_s`` (its sender may come back) and is then stopped.

The reply log says when its last viewer leaves and when a first one comes
(:meth:`~gateway.replies.ReplyLog.watch`); this module keeps the timer in between and,
when it runs out, asks the reply store whether another instance's viewer still follows
the reply before stopping it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .replies import ReplyLog
from .stores.replies import ReplyStore
from .tasks import TaskOwner


class OrphanGrace:
    """The orphan timers of the replies a supervisor runs.

    Contract: :meth:`orphaned` (the last viewer left, or none came) arms one timer of
    ``grace_s`` for a reply that ``runs`` here, unless one is armed; :meth:`adopted` (a
    viewer came) disarms it; :meth:`forget` (the reply task ended) disarms it for good.
    When a timer runs out on a running reply that still has no viewer here, a task spawned
    on ``tasks`` asks the store: a viewer on another instance arms another grace; none
    marks the reply orphaned and calls ``stop(reply, "cancelled")``. Nothing here runs per
    step: only when viewers come and go.
    """

    def __init__(
        self,
        grace_s: float,
        replies: ReplyStore,
        tasks: TaskOwner,
        *,
        runs: Callable[[str], bool],
        stop: Callable[[ReplyLog, str], None],
    ) -> None:
        self.grace_s = grace_s
        self.replies = replies
        self._tasks = tasks
        self._runs = runs
        self._stop = stop
        self._timers: dict[str, asyncio.TimerHandle] = {}  # by message id, while armed

    def orphaned(self, reply: ReplyLog) -> None:
        """No viewer here watches ``reply``: arm its grace (if it runs here, and none is)."""
        message_id = reply.message_id
        if not self._runs(message_id) or message_id in self._timers:
            return
        loop = asyncio.get_running_loop()
        self._timers[message_id] = loop.call_later(self.grace_s, self._expired, reply)

    def adopted(self, reply: ReplyLog) -> None:
        """A viewer came: disarm ``reply``'s grace."""
        timer = self._timers.pop(reply.message_id, None)
        if timer is not None:
            timer.cancel()

    def forget(self, message_id: str) -> None:
        """The reply's task has ended: its timer, if armed, never fires."""
        timer = self._timers.pop(message_id, None)
        if timer is not None:
            timer.cancel()

    def _expired(self, reply: ReplyLog) -> None:
        if reply.viewer_count == 0 and not reply.ended:
            self._tasks.spawn(self._check(reply), "orphan check")

    async def _check(self, reply: ReplyLog) -> None:
        if not self._runs(reply.message_id) or reply.viewer_count or reply.ended:
            return
        if await self.replies.watched_elsewhere(reply.message_id):
            self._timers.pop(reply.message_id, None)  # fired: nothing to cancel
            self.orphaned(reply)  # a viewer on another instance: another grace
            return
        reply.mark_orphaned()
        self._stop(reply, "cancelled")
