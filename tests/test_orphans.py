"""The orphan grace: a running reply with no viewer is stopped once its grace runs out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from gateway.orphans import OrphanGrace
from gateway.replies import ReplyLog
from gateway.stores.replies_memory import MemoryReplyStore
from gateway.tasks import TaskOwner

GRACE_S = 0.02


@dataclass
class Stops:
    """The replies stopped, in order, and an event per reply set when it is stopped."""

    running: set[str] = field(default_factory=set)
    stopped: list[tuple[str, str]] = field(default_factory=list)
    events: dict[str, asyncio.Event] = field(default_factory=dict)

    def stop(self, reply: ReplyLog, finish_reason: str) -> None:
        self.stopped.append((reply.message_id, finish_reason))
        self.event(reply.message_id).set()

    def event(self, message_id: str) -> asyncio.Event:
        return self.events.setdefault(message_id, asyncio.Event())


@pytest.fixture
async def grace() -> AsyncIterator[tuple[OrphanGrace, Stops]]:
    """An orphan grace over the memory reply store; its spawned checks end with the test."""
    stops, tasks = Stops(), TaskOwner()
    orphans = OrphanGrace(
        GRACE_S,
        MemoryReplyStore(60.0),
        tasks,
        runs=stops.running.__contains__,
        stop=stops.stop,
    )
    yield orphans, stops
    await tasks.aclose(0)


def running_reply(stops: Stops, message_id: str) -> ReplyLog:
    stops.running.add(message_id)
    return ReplyLog(message_id, "c1", "alice", "u1", "qwen-plus")


async def test_a_running_reply_with_no_viewer_is_stopped_once_the_grace_runs_out(
    grace: tuple[OrphanGrace, Stops],
) -> None:
    """Not before the grace; then marked orphaned and stopped as cancelled, once."""
    orphans, stops = grace
    reply = running_reply(stops, "a")
    loop = asyncio.get_running_loop()
    started = loop.time()
    orphans.orphaned(reply)
    orphans.orphaned(reply)  # already armed: no second timer
    await asyncio.wait_for(stops.event("a").wait(), 5)
    assert loop.time() - started >= GRACE_S
    assert reply.orphaned
    assert stops.stopped == [("a", "cancelled")]


async def test_an_adopted_reply_is_not_stopped(grace: tuple[OrphanGrace, Stops]) -> None:
    """A viewer coming disarms the grace: a reply orphaned after it is stopped alone."""
    orphans, stops = grace
    adopted, later = running_reply(stops, "a"), running_reply(stops, "b")
    orphans.orphaned(adopted)
    orphans.adopted(adopted)
    orphans.orphaned(later)
    await asyncio.wait_for(stops.event("b").wait(), 5)
    assert stops.stopped == [("b", "cancelled")] and not adopted.orphaned


async def test_a_forgotten_reply_is_not_stopped(grace: tuple[OrphanGrace, Stops]) -> None:
    """Forgetting a reply (its task ended) cancels its armed grace."""
    orphans, stops = grace
    ended, later = running_reply(stops, "a"), running_reply(stops, "b")
    orphans.orphaned(ended)
    orphans.forget("a")
    orphans.orphaned(later)
    await asyncio.wait_for(stops.event("b").wait(), 5)
    assert stops.stopped == [("b", "cancelled")]


async def test_a_reply_not_running_here_gets_no_grace(grace: tuple[OrphanGrace, Stops]) -> None:
    """A reply no task runs here (a mirror, or already ended) is never stopped from here."""
    orphans, stops = grace
    elsewhere = ReplyLog("a", "c1", "alice", "u1", "qwen-plus")
    orphans.orphaned(elsewhere)
    orphans.orphaned(running_reply(stops, "b"))
    await asyncio.wait_for(stops.event("b").wait(), 5)
    assert stops.stopped == [("b", "cancelled")]
