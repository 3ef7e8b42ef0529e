"""The replies seam: running and recently ended reply logs, by message id, for resuming."""

from __future__ import annotations

from typing import Protocol

from ..replies import ReplyLog
from .lifecycle import Lifecycle


class ReplyStore(Lifecycle, Protocol):
    """Reply logs by message id: the ones this instance produces, and mirrors of the ones
    other instances produce.

    A log is :meth:`add`\\ ed before anyone is told of its reply and kept while it runs;
    once it has ended, :meth:`expire_later` keeps it for the resume window (or less, past
    a memory budget), then forgets it. :meth:`get` looks only here, :meth:`find` wherever
    the reply is produced (it may build a mirror). Trouble in shared state raises
    :class:`~gateway.errors.StoreUnavailable` from :meth:`add` and :meth:`find`; the
    other methods answer what they can.
    """

    async def add(self, log: ReplyLog) -> None:
        """A reply this instance produces."""
        ...

    def get(self, message_id: str) -> ReplyLog | None:
        """A log held here: produced here, or mirrored from another instance."""
        ...

    async def find(self, message_id: str) -> ReplyLog | None:
        """The log wherever it is produced."""
        ...

    async def watched_elsewhere(self, message_id: str) -> bool:
        """Whether a viewer on another instance follows this reply."""
        ...

    async def reap_stale(self, message_id: str) -> None:
        """End, as failed, a reply whose producing instance died."""
        ...

    def running(self) -> list[ReplyLog]:
        """The logs held here that have not ended."""
        ...

    def expire_later(self, log: ReplyLog) -> None:
        """The log has ended: forget it once the resume window has passed."""
        ...

    async def forget(self, message_id: str) -> None:
        """Drop the reply's resume data now (its conversation was deleted), here and in
        shared state; the log of a running reply must have been stopped first."""
        ...
