"""The publisher: every reply produced here copied to its Redis stream by group commit.

One task per instance copies every running :class:`~gateway.replies.ReplyLog` to its stream
``reply:{mid}:steps``: as soon as there are new steps and the previous write has returned (and
no sooner than :data:`WRITE_GAP_S` after the previous one began), every changed reply goes in
one ``EVAL`` of :data:`_PUBLISH` (so at low load a step is in Redis one round trip after it is
read, and under load one write carries many replies). Each entry ``0-{seq}`` carries the
steps after the previous entry up to ``seq``, their texts concatenated in ``t`` and their
lengths in ``n``, so a reader rebuilds the exact steps however many one entry holds. The
last entry carries ``end`` (state, finish reason, usage, error).

Durable before delivered: a log's viewers read it only up to its watermark, which the
publisher raises (:meth:`~gateway.replies.ReplyLog.release`) once the write holding the steps
(and, with ``redis.wait_replicas``, its ``WAIT``) has returned. When Redis is down, viewers
wait with the steps and the publisher writes the backlog once it is back, after reading what
each stream already holds.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any, cast

import structlog
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..deadline import StandingDeadline
from ..replies import ReplyLog
from .redis_client import CommandLane, KeySpace, bulk, exchange_untimed, pack_command

log = structlog.get_logger("gateway.replies")

RETRY_MAX_S = 2.0
# Under load the publisher starts a write at most this often, so one write carries the steps
# of many replies; at low load (steps further apart than this) a step is written at once.
WRITE_GAP_S = 0.001
RUNNING_TTL_S = 3600  # a running reply's keys outlive a crashed producer by this much


# KEYS: per reply, its stream and its header. ARGV: the running TTL and the resume window
# (ms), then per reply: the steps' entry id, their texts, lengths and kinds (see
# encode_steps; no id: no steps), "1" when these are its first steps, the end's entry id
# (none: not ended), the end's JSON, and the state. An entry already there (a write whose
# answer was lost, sent again) is not an error.
_PUBLISH = """
local function add(stream, ...)
  local r = redis.pcall('XADD', stream, ...)
  if type(r) == 'table' and r.err and not string.find(r.err, 'equal or smaller', 1, true) then
    return r
  end
end
local a = 3
for i = 1, #KEYS, 2 do
  local stream, header = KEYS[i], KEYS[i + 1]
  local id, t, n, k, first, end_id, body, state = unpack(ARGV, a, a + 7)
  a = a + 8
  if id ~= '' then
    local failed
    if k ~= '' then failed = add(stream, id, 't', t, 'n', n, 'k', k)
    else failed = add(stream, id, 't', t, 'n', n) end
    if failed then return failed end
    if first == '1' then redis.call('PEXPIRE', stream, ARGV[1]) end
  end
  if end_id ~= '' then
    local failed = add(stream, end_id, 'end', body)
    if failed then return failed end
    redis.call('HSET', header, 'state', state)
    redis.call('PEXPIRE', stream, ARGV[2])
    redis.call('PEXPIRE', header, ARGV[2])
  end
end
return 1
"""


# EVAL and the script, packed once; what a reply without steps, or not ended, sends.
_EVAL_PUBLISH = bulk(b"EVAL") + bulk(_PUBLISH.encode())
_ARGS_PER_REPLY = 8
_NO_STEPS = bulk(b"") * 5
_NO_END = bulk(b"") * 3


def _bulks(*parts: bytes) -> bytes:
    return b"".join(b"$%d\r\n%s\r\n" % (len(part), part) for part in parts)


def _pack_steps_in_one_go(head: int, parts: tuple[str, str, str], *, first: bool) -> bytes:
    """A reply's steps as :data:`_PUBLISH` takes them (entry id, texts, lengths, kinds, first),
    packed with one format instead of one call a part: the publisher's per-reply work."""
    eid, t, n, k = b"0-%d" % head, parts[0].encode(), parts[1].encode(), parts[2].encode()
    f = b"1" if first else b""
    return b"$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
        *(len(eid), eid, len(t), t, len(n), n),
        *(len(k), k, len(f), f),
    )


def encode_steps(log_: ReplyLog, after: int, upto: int) -> dict[str, str]:
    """One stream entry for the log's steps after ``after`` up to ``upto``: their texts
    joined (``t``), their lengths in code points (``n``), and, when any is reasoning, their
    kinds (``k``: one digit a step; absent: all answer)."""
    t, n, k = _entry_parts(log_, after, upto)
    return {"t": t, "n": n, "k": k} if k else {"t": t, "n": n}


def _entry_parts(log_: ReplyLog, after: int, upto: int) -> tuple[str, str, str]:
    """:func:`encode_steps`' fields as (t, n, k), k empty when absent: read from the log's
    packed text and offsets, no list of steps built (the publisher's per-reply work)."""
    if upto == after + 1 and log_.only_answers:  # one answer step: most writes under load
        text = log_.text_between(after, upto)
        return text, str(len(text)), ""
    n = ",".join(map(str, log_.sizes(after, upto)))
    k = ""
    if not log_.only_answers:
        kinds = "".join(str(int(log_.kind(seq))) for seq in range(after + 1, upto + 1))
        k = kinds if "1" in kinds else ""
    return log_.text_between(after, upto), n, k


def end_fields(reply: ReplyLog) -> dict[str, Any]:
    """A reply's end as its last stream entry carries it (``end``, JSON)."""
    body: dict[str, Any] = {
        "state": str(reply.state),
        "finish_reason": reply.finish_reason,
        "finished_at": reply.finished_at,
        "head": reply.head,
        "usage": reply.usage.as_json(),
        "orphaned": reply.orphaned,
        "upstream_request_id": reply.upstream_request_id,
        "continued": reply.continued,
    }
    if reply.error is not None:
        body["error"] = [reply.error.code, reply.error.message]
    return body


class ReplyPublisher:
    """Copies the replies produced here to Redis, and releases to their viewers only what a
    write has made durable (see the module's docstring).

    Contract: :meth:`publish` takes a log whose header is in Redis; from then on each of its
    steps, and its end once settled (:meth:`~gateway.replies.ReplyLog.release_end`), reaches
    its stream before any viewer of the log can read it, in order, however many writes fail
    meanwhile. One task writes for every log (started on demand, ended when none runs) on a
    connection of its own; a write that gets no answer within the pool's command timeout
    counts as failed. :meth:`forget` drops a log unwritten; :meth:`aclose` gives the task a
    grace to write what it holds, then stops it.
    """

    def __init__(
        self,
        lane: CommandLane,
        keys: KeySpace,
        resume_window_ms: int,
        *,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 0,
    ) -> None:
        self._lane = lane
        self._k = keys
        self._window_ms = resume_window_ms
        self._timeout_s: float | None = lane.timeout_s
        self._wait_replicas = wait_replicas  # WAIT after each write (0: do not)
        self._wait_timeout_ms = wait_timeout_ms
        self._replicas_short = False
        self._sent: dict[ReplyLog, int] = {}  # local running logs -> steps written to Redis
        self._keys_of: dict[ReplyLog, bytes] = {}  # (see _packed_keys)
        self._dirty: set[ReplyLog] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: AbstractConnection | None = None  # the publisher's own link
        self._deadline = StandingDeadline(self._timeout_s)

    def publish(self, log_: ReplyLog) -> None:
        """From now on, write the log's steps and end as they come (its header is written)."""
        self._sent[log_] = 0
        log_.watch(on_change=functools.partial(self._changed, log_))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="reply publisher")

    def forget(self, log_: ReplyLog) -> None:
        """Write nothing more of the log."""
        self._sent.pop(log_, None)
        self._keys_of.pop(log_, None)
        self._dirty.discard(log_)

    def _changed(self, log_: ReplyLog) -> None:
        self._dirty.add(log_)
        self._wake.set()

    async def _run(self) -> None:
        """While local replies run: group commit. As soon as there are steps and the previous
        write has returned, write every changed reply in one round trip, then release what it
        wrote to the viewers. After a failed write, first find what each stream holds."""
        delay, resync, began = 0.05, False, 0.0
        while self._sent:
            await self._wake.wait()
            began = await self._batch_steps_under_load(began)
            self._wake.clear()
            batch, self._dirty = self._dirty, set()
            try:
                if resync:
                    batch |= await self._resync()
                    resync = False
                written = await self._write(batch)
                delay = 0.05
            except Exception as exc:  # viewers wait on this task: it must not die
                self._dirty |= batch  # nothing is lost: the next round writes it
                self._wake.set()
                resync = True
                if isinstance(exc, RedisError):
                    log.warning("reply publish waits for redis", error=type(exc).__name__)
                else:
                    log.exception("reply publish failed; retrying")
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            for reply, head, ended in written:
                reply.release(head, ended)

    @staticmethod
    async def _batch_steps_under_load(previous: float) -> float:
        """Start this write no sooner than :data:`WRITE_GAP_S` after the previous one began,
        so steps arriving meanwhile ride in it; when the previous write is older, at once.
        When this write begins (loop time)."""
        loop = asyncio.get_running_loop()
        wait = previous + WRITE_GAP_S - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        return loop.time()

    async def _write(self, batch: set[ReplyLog]) -> list[tuple[ReplyLog, int, bool]]:
        """Write the batch's new steps and ends; what was written: (reply, head, ended)."""
        keys: list[bytes] = []  # per reply: its stream and header, packed
        args: list[bytes] = []  # per reply: its steps' and its end's arguments, packed
        written: list[tuple[ReplyLog, int, bool]] = []
        for reply in batch:
            # Read once: steps and the end may arrive while the write is on its way.
            sent, head = self._sent.get(reply, -1), reply.head
            ended = reply.ended and not reply.end_held  # settled first: history, claim
            if sent < 0:
                continue  # already finished and forgotten
            written.append((reply, head, ended))
            if head <= sent and not ended:
                continue
            keys.append(self._packed_keys(reply))
            if head > sent:
                parts = _entry_parts(reply, sent, head)
                args.append(_pack_steps_in_one_go(head, parts, first=sent == 0))
            else:
                args.append(_NO_STEPS)
            if ended:
                end = json.dumps(end_fields(reply)).encode()
                args.append(_bulks(b"0-%d" % (head + 1), end, str(reply.state).encode()))
            else:
                args.append(_NO_END)
        if not written:
            return written
        commands = [self._one_command_for_every_reply(keys, args)] if keys else []
        if commands and self._wait_replicas:
            commands.append(pack_command(b"WAIT", self._wait_replicas, self._wait_timeout_ms))
        answers = await self._send_on_own_connection(commands) if commands else []
        for answer in answers:
            if isinstance(answer, RedisError):  # (an entry already there is no error)
                raise answer
        if commands and self._wait_replicas:
            self._note_replicas(int(cast(int, answers[-1])))
        for reply, head, ended in written:
            if ended:
                self._sent.pop(reply, None)
                self._keys_of.pop(reply, None)
            else:
                self._sent[reply] = head
        return written

    def _packed_keys(self, reply: ReplyLog) -> bytes:
        """The reply's stream and header keys as :data:`_PUBLISH` takes them, packed once
        per reply instead of once per write."""
        packed = self._keys_of.get(reply)
        if packed is None:
            mid = reply.message_id
            packed = _bulks(self._k.steps(mid).encode(), self._k.reply(mid).encode())
            self._keys_of[reply] = packed
        return packed

    def _one_command_for_every_reply(self, keys: list[bytes], args: list[bytes]) -> bytes:
        """The whole write as one ``EVAL`` of :data:`_PUBLISH`: one answer to read, however
        many replies it carries. (``EVAL`` and not ``EVALSHA``: a Redis restarted or failed
        over has no script cache, and a missing script must not let an end pass its steps.)
        ``keys`` and ``args`` are each reply's, already packed."""
        replies = len(keys)
        ttls = _bulks(b"%d" % (RUNNING_TTL_S * 1000), b"%d" % self._window_ms)
        parts = 3 + 2 * replies + 2 + _ARGS_PER_REPLY * replies
        count = b"%d" % (2 * replies)
        return b"".join([b"*%d\r\n" % parts, _EVAL_PUBLISH, _bulks(count), *keys, ttls, *args])

    async def _resync(self) -> set[ReplyLog]:
        """Count as written what each running reply's stream holds now, so the next write
        sends again what is missing: a failover may have lost writes the old master had
        acknowledged (replication is asynchronous). The replies, all to be written."""
        replies = list(self._sent)
        commands = [
            pack_command(b"XREVRANGE", self._k.steps(r.message_id), b"+", b"-", b"COUNT", b"1")
            for r in replies
        ]
        for reply, answer in zip(replies, await self._send(commands), strict=True):
            if isinstance(answer, RedisError):
                raise answer
            newest = cast(list[list[bytes]], answer)
            top = int(newest[0][0].partition(b"-")[2]) if newest else 0
            if reply in self._sent:
                self._sent[reply] = min(top, reply.head)
        return set(replies)

    async def _send(self, commands: list[bytes]) -> list[object]:
        """Send packed commands in one write on a connection of the store's lane; their
        answers, errors as values (the resync; the writes go on the publisher's own
        connection)."""
        return await self._lane.exchange(b"".join(commands), len(commands), decode=False)

    async def _send_on_own_connection(self, commands: list[bytes]) -> list[object]:
        """As :meth:`_send`, on a connection only the publisher uses and never tried again
        here (after a broken link the publisher first finds what each stream holds): no
        pool checkout, no per-answer timer, and the command timeout kept by one standing
        timer instead of one armed per write."""
        if self._conn is None:
            self._conn = self._lane.open_connection()
        try:
            async with self._deadline:
                return await exchange_untimed(
                    self._conn, b"".join(commands), len(commands), decode=False
                )
        except TimeoutError:
            raise RedisTimeoutError("reply publish timed out") from None

    def _note_replicas(self, acked: int) -> None:
        """Log when writes start or stop reaching ``redis.wait_replicas`` replicas in time."""
        short = acked < self._wait_replicas
        if short != self._replicas_short:
            self._replicas_short = short
            if short:
                log.warning("replicas behind: a failover now may lose steps", acked=acked)
            else:
                log.info("replicas caught up", acked=acked)

    async def aclose(self, grace_s: float) -> asyncio.Task[None] | None:
        """Give the task ``grace_s`` to write what it holds; the task, still to be stopped
        (beside the mirrors' tasks), None when there is none."""
        if self._task is None:
            return None
        await asyncio.wait({self._task}, timeout=grace_s)
        return self._task

    async def disconnect(self) -> None:
        """Close the publisher's own connection (once its task is stopped)."""
        self._deadline.cancel()
        if self._conn is not None:
            await self._conn.disconnect()
