"""The Lua the Redis conversation store runs: one script per write, each atomic in Redis.

Above each script: its ``KEYS`` and ``ARGV``, in order;
:class:`~.conversations_redis_codec.RedisConversationCodec` packs them and reads the
answers. The one-reply-at-a-time rule and the idempotent client ids are decided in
:data:`_CLAIM`, so two instances cannot both start a reply; a running reply whose instance
stopped heart-beating (no alive key) is stale. :mod:`.turn_writes_redis` runs :data:`_CLAIM`,
:data:`_ADD` and :data:`_SETTLE` unchanged inside its own scripts, as Lua functions of
their own ``KEYS`` and ``ARGV``.
"""

from __future__ import annotations

# The conversation whole, in one answer: its header, members, history order, messages and
# client ids, and whether the instance of its running reply is alive (1 or 0). KEYS: conv,
# members, order, msgs, clients; the last ARGV is the alive key prefix.
_READ = """
local alive = 0
local running = redis.call('HGET', KEYS[1], 'running')
if running and running ~= '' then
  local owner = redis.call('HGET', KEYS[1], 'running_instance') or ''
  alive = redis.call('EXISTS', ARGV[#ARGV] .. owner .. '}')
end
return {redis.call('HGETALL', KEYS[1]), redis.call('SMEMBERS', KEYS[2]),
        redis.call('LRANGE', KEYS[3], 0, -1), redis.call('HGETALL', KEYS[4]),
        redis.call('HGETALL', KEYS[5]), alive}
"""

# Create it unless it exists, then _READ. KEYS: conv, members, order, msgs, clients,
# user_convs. ARGV: owner, session_type, assistant, now, id, ttl, alive key prefix.
_CREATE_AND_READ = (
    """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'session_type', ARGV[2], 'assistant', ARGV[3],
             'created_at', ARGV[4], 'updated_at', ARGV[4], 'title', '')
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[6], ARGV[4], ARGV[5])
  redis.call('EXPIRE', KEYS[6], ARGV[6])
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[6])
"""
    + _READ
)

# KEYS: order, msgs, conv, members. ARGV: max, now, title, ttl, user key prefix, conversation
# id, then id and JSON of each message. Every member's list of conversations is touched too
# (the key is built here: one Redis primary, no cluster slots to respect).
_ADD = """
for i = 7, #ARGV, 2 do
  redis.call('RPUSH', KEYS[1], ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
local extra = redis.call('LLEN', KEYS[1]) - tonumber(ARGV[1])
for _ = 1, extra do
  redis.call('HDEL', KEYS[2], redis.call('LPOP', KEYS[1]))
end
redis.call('HSET', KEYS[3], 'updated_at', ARGV[2])
if ARGV[3] ~= '' and (redis.call('HGET', KEYS[3], 'title') or '') == '' then
  redis.call('HSET', KEYS[3], 'title', ARGV[3])
end
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
for _, member in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  local list = ARGV[5] .. member .. '}:convs'
  redis.call('ZADD', list, ARGV[2], ARGV[6])
  redis.call('EXPIRE', list, ARGV[4])
end
return 1
"""

# KEYS: msgs. ARGV: id, json. A message gone (trimmed, reset) stays gone.
_UPDATE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: conv, clients. ARGV: message id, client id, instance, interrupt, alive key prefix, ttl
_CLAIM = """
local seen = redis.call('HGET', KEYS[2], ARGV[2])
if seen then return {'duplicate', seen, '0'} end
local current = redis.call('HGET', KEYS[1], 'running')
local outcome = {'started', '', '0'}
if current and current ~= '' then
  local owner = redis.call('HGET', KEYS[1], 'running_instance') or ''
  local live = redis.call('EXISTS', ARGV[5] .. owner .. '}') == 1
  if live and ARGV[4] ~= '1' then return {'busy', current, '0'} end
  outcome = {'started', current, live and '0' or '1'}
end
redis.call('HSET', KEYS[1], 'running', ARGV[1], 'running_instance', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[6])
return outcome
"""

# _UPDATE, then _END: KEYS: msgs, conv. ARGV: message id, JSON ('': no text to store)
_SETTLE = """
if ARGV[2] ~= '' and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
if redis.call('HGET', KEYS[2], 'running') == ARGV[1] then
  redis.call('HDEL', KEYS[2], 'running', 'running_instance')
end
return 1
"""

# KEYS: conv. ARGV: message id
_END = """
if redis.call('HGET', KEYS[1], 'running') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'running', 'running_instance')
  return 1
end
return 0
"""

# KEYS: conv, members, order, clients, user_convs. ARGV: id
_FORGET = """
if redis.call('LLEN', KEYS[3]) > 0 or (redis.call('HGET', KEYS[1], 'running') or '') ~= '' then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
redis.call('ZREM', KEYS[5], ARGV[1])
return 1
"""

# KEYS: order, msgs. ARGV: keep. The history after its first ``keep`` messages is dropped.
_TRUNCATE = """
local keep = tonumber(ARGV[1])
for _, id in ipairs(redis.call('LRANGE', KEYS[1], keep, -1)) do
  redis.call('HDEL', KEYS[2], id)
end
if keep == 0 then redis.call('DEL', KEYS[1]) else redis.call('LTRIM', KEYS[1], 0, keep - 1) end
return 1
"""

# KEYS: conv. ARGV: title, now. A conversation deleted meanwhile stays deleted.
_RENAME = """
if redis.call('HEXISTS', KEYS[1], 'owner') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'title', ARGV[1], 'updated_at', ARGV[2])
return 1
"""

# KEYS: conv, members, order, msgs, clients. ARGV: id, user key prefix
_DELETE = """
for _, member in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  redis.call('ZREM', ARGV[2] .. member .. '}:convs', ARGV[1])
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return 1
"""
