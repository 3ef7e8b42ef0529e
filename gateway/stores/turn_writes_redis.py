"""A turn's writes in Redis, one script each: admit and claim, then start the reply.

Each script is built from the seams' own scripts, each wrapped as a Lua function of its
``KEYS`` and ``ARGV`` (:func:`_as_function`), so what runs is what the stores run one call
at a time, only in one round trip: the rate limiter's bucket (``_TAKE``), the address's
window (``_HIT``), today's spend (the usage store's spent hash), the claim (``_CLAIM``);
then history (``_ADD``), the reply's header (``_HEADER``) and the ``turn`` event (the
bus's channel, its own encoding); at the end the reply's settle (``_SETTLE``) and its
usage (``_RECORD``), the usage guarded by a mark in the reply's header so that a retry
after an answer lost on the way counts it once.
"""

from __future__ import annotations

import uuid
from typing import Any

from ..conversations import Conversation, HistoryMessage, Status
from ..quotas import message_window_key
from ..replies import ReplyLog
from ..usage import SpentToday, UsageRecord
from .conversations_lua import _ADD, _CLAIM, _SETTLE
from .conversations_redis import RedisConversationStore
from .events_redis import RedisBus
from .ratelimits_redis import _TAKE
from .redis_client import KeySpace, Redis, guarded
from .replies_redis import _HEADER, RedisReplyStore
from .turn_writes import Admission, TurnAsk
from .usage_redis import _RECORD, RedisUsageStore
from .window_counters_redis import _HIT, RedisWindowCounter


def _as_function(name: str, script: str) -> str:
    """A store's script as a local Lua function of its own ``KEYS`` and ``ARGV``."""
    return f"local function {name}(KEYS, ARGV)\n{script}\nend\n"


# KEYS: rate bucket, address window, today's spent hash, conv, clients. ARGV: messages per
# minute (0: no limit), tokens per second; the address's limit (0: none), its window (s), a
# unique member; quotas (1: any), per user, per address, per assistant, anonymous (1/0), the
# spent fields of the user, the assistant and the address ('': none); then _CLAIM's six.
_ADMIT_AND_CLAIM = (
    _as_function("take", _TAKE)
    + _as_function("hit", _HIT)
    + _as_function("claim", _CLAIM)
    + """
if tonumber(ARGV[1]) > 0 and take({KEYS[1]}, {ARGV[1], ARGV[2]}) == 0 then
  return {'rate_limited'}
end
if tonumber(ARGV[3]) > 0 and hit({KEYS[2]}, {ARGV[3], ARGV[4], ARGV[5]}) == 0 then
  return {'address_limited'}
end
local su, sas, sad = 0, 0, 0
if ARGV[6] == '1' then
  local address = ARGV[13] ~= '' and ARGV[13] or ARGV[11]
  local v = redis.call('HMGET', KEYS[3], ARGV[11], ARGV[12], address)
  su, sas = tonumber(v[1]) or 0, tonumber(v[2]) or 0
  if ARGV[13] ~= '' then sad = tonumber(v[3]) or 0 end
  local pu, pad, pas = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
  if (pu > 0 and su >= pu) or (ARGV[10] == '1' and pad > 0 and sad >= pad)
     or (pas > 0 and sas >= pas) then
    return {'over_quota', su, sas, sad}
  end
end
local c = claim({KEYS[4], KEYS[5]}, {unpack(ARGV, 14, 19)})
return {'claimed', su, sas, sad, c[1], c[2], c[3]}
"""
)

# KEYS: order, msgs, conv, members (_ADD's), the reply's header. ARGV: how many of _ADD's
# arguments, the event channel, the event, then _ADD's arguments, then _HEADER's.
_START = (
    _as_function("add", _ADD)
    + _as_function("header", _HEADER)
    + """
local n = tonumber(ARGV[1])
add({KEYS[1], KEYS[2], KEYS[3], KEYS[4]}, {unpack(ARGV, 4, 3 + n)})
header({KEYS[5]}, {unpack(ARGV, 4 + n)})
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"""
)

# KEYS: msgs, conv (_SETTLE's), the reply's header, the usage day and spent hashes (_RECORD's).
# ARGV: _SETTLE's two, then _RECORD's. The usage counts unless the header says it did (a
# header gone, after a long outage, counts it: nothing tells).
_SETTLE_AND_RECORD = (
    _as_function("settle", _SETTLE)
    + _as_function("record", _RECORD)
    + """
settle({KEYS[1], KEYS[2]}, {ARGV[1], ARGV[2]})
if redis.call('EXISTS', KEYS[3]) == 0 or redis.call('HSETNX', KEYS[3], 'usage', '1') == 1 then
  record({KEYS[4], KEYS[5]}, {unpack(ARGV, 3)})
end
return 1
"""
)


class RedisTurnWrites:
    """:class:`~gateway.stores.turn_writes.TurnWrites` in one script a step (see the
    module's docstring), over the Redis stores whose keys and snapshots it shares."""

    def __init__(
        self,
        redis: Redis,
        keys: KeySpace,
        conversations: RedisConversationStore,
        replies: RedisReplyStore,
        bus: RedisBus,
        windows: RedisWindowCounter,
        usage: RedisUsageStore,
        messages_per_minute: int,
    ) -> None:
        self._k = keys
        self._conversation_codec = conversations.codec
        self._replies = replies
        self._bus = bus
        self._windows = windows
        self._usage = usage
        self._per_minute = max(0, messages_per_minute)
        self._admit = redis.register_script(_ADMIT_AND_CLAIM)
        self._start = redis.register_script(_START)
        self._settle_and_record = redis.register_script(_SETTLE_AND_RECORD)

    async def admit_and_claim(
        self,
        conversation: Conversation,
        ask: TurnAsk,
        message_id: str,
        client_id: str,
        instance: str,
        *,
        interrupt: bool,
    ) -> Admission:
        """The rate limit, the address's window, today's spend and the claim: one script."""
        claim_keys, claim_args = self._conversation_codec.claim_request(
            conversation, message_id, client_id, instance, interrupt
        )
        address, quotas = ask.address, ask.quotas
        window = ask.address_per_minute if address is not None else 0
        window_key = self._windows.key(message_window_key(address or ""))
        keys = [self._k.rate(ask.user), window_key, self._usage.spent_key(ask.today), *claim_keys]
        args: list[Any] = [
            *(self._per_minute, self._per_minute / 60.0),
            *(window, 60.0, uuid.uuid4().hex if window else ""),
            *(int(quotas.any), quotas.per_user, quotas.per_address, quotas.per_assistant),
            int(address is not None),
            *(f"user:{ask.user}", f"assistant:{ask.assistant}"),
            f"address:{address}" if address is not None else "",
            *claim_args,
        ]
        with guarded():
            answer = await self._admit(keys=keys, args=args)
        outcome = answer[0]
        if outcome == "rate_limited" or outcome == "address_limited":
            return Admission(outcome)
        spent = SpentToday(int(answer[1]), int(answer[2]), int(answer[3])) if quotas.any else None
        if outcome == "over_quota":
            return Admission("over_quota", spent)
        claim = self._conversation_codec.claimed(conversation, answer[4:7], message_id, client_id)
        return Admission("claimed", spent, claim)

    async def start_reply(
        self,
        conversation: Conversation,
        messages: tuple[HistoryMessage, ...],
        reply: ReplyLog,
        frame: str,
    ) -> None:
        """History, the reply's header and the ``turn`` event: one script; then the reply is
        published from here like any :meth:`RedisReplyStore.add`-ed one."""
        add_keys, add_args, now, title = self._conversation_codec.add_request(
            conversation, messages
        )
        header_keys, header_args = self._replies.header_request(reply)
        event = self._bus.encode(
            "turn", conversation_id=conversation.id, frame=frame, message_id=reply.message_id
        )
        with guarded():
            await self._start(
                keys=[*add_keys, *header_keys],
                args=[len(add_args), self._bus.channel, event, *add_args, *header_args],
            )
        self._conversation_codec.added(conversation, messages, now, title)
        await self._replies.produce_here(reply)

    async def settle_and_record(
        self,
        conversation: Conversation,
        message_id: str,
        text: tuple[str, Status, str] | None,
        record: UsageRecord,
    ) -> None:
        """The reply's settle and its usage: one script (see :data:`_SETTLE_AND_RECORD`)."""
        settle_keys, settle_args = self._conversation_codec.settle_request(
            conversation, message_id, text
        )
        record_keys, record_args = self._usage.record_request(record)
        with guarded():
            await self._settle_and_record(
                keys=[*settle_keys, self._k.reply(message_id), *record_keys],
                args=[*settle_args, *record_args],
            )
        self._conversation_codec.settled(conversation, message_id)
