"""Where shared state lives: in this process (the default), or in Redis (``redis.url``).

The streaming core talks to five seams; each has a memory and a Redis implementation::

    seam                  memory (one instance)              Redis (several instances)
    conversations         conversations.MemoryConversationStore  redis_conversations
    reply logs            replies.ReplyStore                 redis_replies (Streams)
    events (rooms, stop,  memory.LocalBus                    redis_bus (one pub/sub channel)
      broadcast)
    presence (who is      memory.LocalPresence               redis_presence (heartbeat)
      connected where)
    rate limits           ratelimits.RateLimiter             redis_ratelimits (Lua bucket)

Local viewers of a local reply always read the in-memory log: Redis carries only what
crosses instances. :func:`gateway.stores.backends.open_backends` picks the set.
"""
