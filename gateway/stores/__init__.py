"""Where shared state lives: in this process (the default), or in Redis (``redis.url``).

The streaming core talks to five seams. Each has one interface module (a ``Protocol``)
and its memory and Redis implementations beside it::

    seam                       interface         memory (one instance)     Redis (several)
    conversations              conversations     conversations_memory      conversations_redis
      (history, rooms, the       ConversationStore MemoryConversationStore   RedisConversationStore
      running reply)                                                         (Lua claims)
    reply logs (resume,        replies           replies_memory            replies_redis
      mirrors)                   ReplyStore        MemoryReplyStore          RedisReplyStore
                                                                             (Streams)
    events (rooms, stop,       events            events_memory             events_redis
      broadcast)                 Bus, Event        LocalBus                  RedisBus (pub/sub)
    presence (who is           presence          presence_memory           presence_redis
      connected where)           Presence          LocalPresence             RedisPresence
                                                                             (heartbeat)
    rate limits                ratelimits        ratelimits_memory         ratelimits_redis
                                 RateLimiter       MemoryRateLimiter         RedisRateLimiter
                                                                             (Lua bucket)
    a turn's writes            turn_writes       turn_writes_memory        turn_writes_redis
      (admit and claim, start)   TurnWrites        SteppedTurnWrites         RedisTurnWrites
                                                                             (one script each)

Every backend has the same lifecycle (:class:`~.lifecycle.Lifecycle`): ``run()`` does its
background work until cancelled (or returns at once), ``aclose()`` releases what it holds.
:mod:`.backends` picks the set (:func:`~.backends.memory_backends`,
:func:`~.backends.redis_backends`) and starts and stops it as one
(:class:`~.backends.Backends`); :mod:`.redis_client` holds the Redis client, the key
layout and the one place Redis errors become ours. The Redis reply store's publisher is in
:mod:`.reply_publisher`; its mirrors of other instances' replies are in :mod:`.reply_mirrors`.

Local viewers of a local reply always read the in-memory log: Redis carries only what
crosses instances.
"""
