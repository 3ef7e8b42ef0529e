"""Mirrors: this instance's copies of replies that other instances produce, kept up to date.

When a viewer here needs a reply produced elsewhere (a resume, a room member here), its
header ``reply:{mid}`` and its stream ``reply:{mid}:steps`` (written by the producer's
publisher, see :mod:`.reply_publisher`) become a *mirror*: a
:class:`~gateway.replies.ReplyLog` with ``remote=True`` that local viewers read like any
log. One *reader* task follows every running mirror with a single ``XREAD BLOCK`` (one
connection however many mirrors; a busy round returns at once with the entries of many
streams); a new mirror wakes a blocked read through this instance's nudge stream instead
of waiting for it to time out. While a mirror has viewers the reader marks
``reply:{mid}:watched``, so the producer does not stop the reply as orphaned. When the
producing instance dies (its alive key expires), the reader *reaps* the reply: it ends it
as failed, in the history and the stream too (one instance claims that write), keeping the
text that reached the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any, cast

import structlog
from redis.exceptions import RedisError
from redis.typing import KeyT, StreamIdT

from ..errors import StoreUnavailable, UpstreamError, error_for_code
from ..replies import ReplyLog, ReplyState, StepKind
from ..tasks import TaskOwner, cancel_and_wait
from ..usage import TokenCounts
from .conversations import ConversationStore
from .redis_client import CommandLane, KeySpace, Redis, guarded, pack_command

log = structlog.get_logger("gateway.replies")

FOLLOW_BLOCK_MS = 100  # an idle reader's XREAD returns this often (producer checks)
NUDGE_TTL_MS = 60_000
CHECK_EVERY_S = 1.0  # watched marks and producer liveness
WATCHED_TTL_S = 5  # a mirror's watched mark outlives a few missed checks
RETRY_MAX_S = 2.0  # the reader's longest wait between tries while Redis is down
Entries = list[tuple[str, dict[str, str]]]


def _entry_id(seq: int) -> str:
    return f"0-{seq}"


def decode_steps(entry_id: str, fields: dict[str, str]) -> tuple[int, list[tuple[str, StepKind]]]:
    """The seq of the entry's first step, and its steps with their kinds, exactly as they
    were appended (the inverse of :func:`.reply_publisher.encode_steps`)."""
    sizes = [int(n) for n in fields["n"].split(",")]
    kinds = [StepKind(int(k)) for k in fields["k"]] if "k" in fields else None
    text, steps, offset, answer = fields["t"], [], 0, StepKind.ANSWER
    for i, size in enumerate(sizes):
        steps.append((text[offset : offset + size], kinds[i] if kinds else answer))
        offset += size
    return int(entry_id.partition("-")[2]) - len(sizes) + 1, steps


class ReplyMirrors:
    """The mirrors of one instance (see the module's docstring), for the reply store that
    owns it.

    Contract: :meth:`load` builds a mirror from Redis (one load however many callers ask
    at once), hands it to ``hold`` (the store's logs) and, while it runs, follows it; a
    mirror that has ended is given to ``expire_later``. The reader task starts on demand
    and stops once nothing is followed; reaps, watched marks and nudges are background
    tasks of this object. ``end_fields`` encodes a reply's end entry as the publisher does,
    so a reaped reply's end reads like any other. Nudges go through ``lane``, which the
    store owns and closes. :meth:`aclose` gives the background tasks ``grace_s``, stops
    following, then cancels the reader together with the store's tasks it is given.
    """

    def __init__(
        self,
        redis: Redis,
        keys: KeySpace,
        instance: str,
        lane: CommandLane,
        conversations: ConversationStore,
        *,
        hold: Callable[[ReplyLog], None],
        expire_later: Callable[[ReplyLog], None],
        end_fields: Callable[[ReplyLog], dict[str, Any]],
        outage_grace_s: float = 0.0,
    ) -> None:
        self._redis = redis
        self._k = keys
        self._instance = instance
        self._lane = lane
        self._conversations = conversations
        self._hold = hold
        self._expire_later = expire_later
        self._end_fields = end_fields
        self._followed: dict[str, tuple[ReplyLog, str]] = {}  # stream -> (mirror, last id)
        self._reader: asyncio.Task[None] | None = None
        # A new mirror wakes the reader's blocking XREAD through this stream at once,
        # instead of joining the next XREAD when the current one times out.
        self._nudge_key, self._nudge_last = keys.nudge(instance), "0-0"
        self._background = TaskOwner()  # reaps, watched marks, nudges
        self._loading: dict[str, asyncio.Future[ReplyLog | None]] = {}
        # After Redis was unreachable, alive markers may have expired meanwhile (a failover
        # longer than three beats): producers get this long to beat again before a reap.
        self._outage_grace_s = outage_grace_s

    async def load(self, message_id: str) -> ReplyLog | None:
        """A mirror of the reply another instance produces (None: Redis has no such
        reply); while one load runs, other callers share it."""
        pending = self._loading.get(message_id)
        if pending is not None:  # another viewer here is already loading it
            return await asyncio.shield(pending)
        future: asyncio.Future[ReplyLog | None] = asyncio.get_running_loop().create_future()
        self._loading[message_id] = future
        try:
            mirror = await self._load(message_id)
            future.set_result(mirror)
            return mirror
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning
            raise
        finally:
            del self._loading[message_id]

    async def _load(self, message_id: str) -> ReplyLog | None:
        with guarded():
            header = cast(dict[str, str], await self._redis.hgetall(self._k.reply(message_id)))
            if not header or "conversation_id" not in header:
                return None
            mirror = ReplyLog(
                message_id=message_id,
                conversation_id=header["conversation_id"],
                owner=header["owner"],
                reply_to=header["reply_to"],
                model=header["model"],
                started_at=float(header["started_at"]),
                remote=True,
                instance=header["instance"],
            )
            entries = cast(Entries, await self._redis.xrange(self._k.steps(message_id)))
        last = self._apply(mirror, entries)
        mirror.watch(on_adopted=self._mark_watched)  # a first viewer here: tell the producer now
        self._hold(mirror)
        if mirror.ended:
            self._expire_later(mirror)
        else:
            self._followed[self._k.steps(message_id)] = (mirror, last)
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read(), name="reply reader")
            else:
                self._background.spawn(self._nudge(), "nudge")
        return mirror

    def _apply(self, mirror: ReplyLog, entries: Entries) -> str:
        last = _entry_id(mirror.head)
        for entry_id, fields in entries:
            last = entry_id
            if "end" in fields:
                self._finish_mirror(mirror, json.loads(fields["end"]))
                break
            first, steps = decode_steps(entry_id, fields)
            for seq, (text, kind) in enumerate(steps, start=first):
                if seq > mirror.head:  # steps already held are skipped
                    mirror.append(text, kind)
        return last

    def _finish_mirror(self, mirror: ReplyLog, end: dict[str, Any]) -> None:
        if end.get("orphaned"):
            mirror.mark_orphaned()
        mirror.mark_continued(int(end.get("continued") or 0))
        error = end.get("error")
        mirror.finish(
            ReplyState(end["state"]),
            end.get("finish_reason") or "error",
            error=error_for_code(error[0], error[1]) if error else None,
            usage=TokenCounts(**end.get("usage") or {}),
            request_id=end.get("upstream_request_id"),
            finished_at=float(end["finished_at"]) if end.get("finished_at") else None,
        )

    async def _read(self) -> None:
        """While mirrors run: read every followed stream in one XREAD; check on producers."""
        delay, checked = 0.05, time.monotonic()
        while self._followed:
            streams: dict[KeyT, StreamIdT] = {
                stream: last for stream, (_, last) in self._followed.items()
            }
            streams[self._nudge_key] = self._nudge_last
            try:
                found = cast(
                    list[tuple[str, Entries]],
                    await self._redis.xread(streams, block=FOLLOW_BLOCK_MS, count=500),
                )
                for stream, entries in found or ():
                    if stream == self._nudge_key:
                        self._nudge_last = entries[-1][0]
                        continue
                    if stream not in self._followed:
                        continue  # reaped while the XREAD was on its way
                    mirror, _ = self._followed[stream]
                    self._followed[stream] = (mirror, self._apply(mirror, entries))
                    if mirror.ended:
                        del self._followed[stream]
                        self._expire_later(mirror)
                if time.monotonic() - checked >= CHECK_EVERY_S:
                    checked = time.monotonic()
                    await self._check_producers()
                delay = 0.05
            except RedisError as exc:
                log.warning("reply reader waits for redis", error=type(exc).__name__)
                checked = time.monotonic() + self._outage_grace_s
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    async def _nudge(self) -> None:
        """Wake the reader's blocking XREAD, so a new mirror joins it now."""
        with contextlib.suppress(RedisError):  # it joins when the XREAD times out anyway
            commands = [
                pack_command(b"XADD", self._nudge_key, b"MAXLEN", 8, b"*", b"n", 1),
                pack_command(b"PEXPIRE", self._nudge_key, NUDGE_TTL_MS),
            ]
            await self._lane.exchange(b"".join(commands), len(commands), decode=False)

    async def _check_producers(self) -> None:
        """Mark the mirrors that have viewers as watched; reap those whose producer died."""
        mirrors = [mirror for mirror, _ in self._followed.values()]
        producers = sorted({m.instance for m in mirrors})
        pipe = self._redis.pipeline(transaction=False)
        for mirror in mirrors:
            if mirror.viewer_count:
                pipe.set(self._k.watched(mirror.message_id), self._instance, ex=WATCHED_TTL_S)
        for instance in producers:
            pipe.exists(self._k.alive(instance))
        answers = await pipe.execute()
        alive = dict(zip(producers, answers[len(answers) - len(producers) :], strict=True))
        for mirror in mirrors:
            if alive[mirror.instance]:
                continue
            stream = self._k.steps(mirror.message_id)
            del self._followed[stream]  # the reader stops here; the reap writes the end
            self._background.spawn(self.reap(mirror), "reap")

    def _mark_watched(self, mirror: ReplyLog) -> None:
        if not mirror.ended:
            self._background.spawn(self._set_watched(mirror), "watched")

    async def _set_watched(self, mirror: ReplyLog) -> None:
        with contextlib.suppress(RedisError):  # the reader marks it again within a second
            await self._redis.set(
                self._k.watched(mirror.message_id), self._instance, ex=WATCHED_TTL_S
            )

    async def watched_elsewhere(self, message_id: str) -> bool:
        """Whether another instance's mirror of this reply has viewers (its watched mark)."""
        try:
            return bool(await self._redis.exists(self._k.watched(message_id)))
        except RedisError:
            return False  # cannot tell: let the grace decide

    async def reap(self, mirror: ReplyLog) -> None:
        """The producer died: end the reply as failed, in Redis (history first), then here."""
        stream = self._k.steps(mirror.message_id)
        error = UpstreamError("the instance producing this reply went away")
        try:
            claimed = await self._redis.set(
                self._k.reaped(mirror.message_id), self._instance, nx=True, ex=60
            )
            if claimed:  # one instance writes the end; the others read it
                conv = await self._conversations.get(mirror.conversation_id)
                if conv is not None:
                    await self._conversations.update_message(
                        conv, mirror.message_id, mirror.text, "failed"
                    )
                    await self._conversations.end_reply(conv, mirror.message_id)
                end = {
                    **self._end_fields(mirror),
                    "state": str(ReplyState.FAILED),
                    "finish_reason": "error",
                    "finished_at": time.time(),
                    "error": [error.code, error.message],
                }
                await self._redis.xadd(
                    stream, {"end": json.dumps(end)}, id=_entry_id(mirror.head + 1)
                )
                log.warning("reply reaped", message_id=mirror.message_id, instance=mirror.instance)
        except (RedisError, StoreUnavailable) as exc:  # the stale claim path retries later
            log.warning("reply reaped here only: redis is down", error=type(exc).__name__)
        finally:
            self._followed.pop(stream, None)
            mirror.finish(ReplyState.FAILED, "error", error=error)
            self._expire_later(mirror)

    def unfollow(self, message_id: str) -> None:
        """Stop following the reply (its conversation was deleted)."""
        self._followed.pop(self._k.steps(message_id), None)

    async def aclose(self, grace_s: float, alongside: set[asyncio.Task[None]]) -> None:
        """Give reaps, watched marks and nudges ``grace_s``, stop following, then cancel
        the reader and the ``alongside`` tasks (the store's publisher) in one round."""
        await self._background.aclose(grace_s)
        self._followed.clear()
        pending = set(alongside)
        if self._reader is not None:
            pending.add(self._reader)
        await cancel_and_wait(pending)
