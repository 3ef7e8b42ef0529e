"""The lifecycle every backend shares: ``run()`` while the instance serves, then ``aclose()``."""

from __future__ import annotations

from typing import Protocol


class Lifecycle(Protocol):
    """A backend's background work and its end.

    :meth:`run` does the backend's background work until it is cancelled (a listener, a
    heartbeat), or returns at once where there is none; :class:`~.backends.Backends` runs
    it as a task for the instance's life. :meth:`aclose`, called once that task is
    cancelled, writes or releases what the backend still holds; it does not raise.
    """

    async def run(self) -> None: ...

    async def aclose(self) -> None: ...
