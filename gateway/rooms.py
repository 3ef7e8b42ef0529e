"""Who is watching which conversation on this instance, and fan-out of conversation events.

Every conversation is a room: the tabs of one user on a person conversation, or the
members of a group. Events are put on each viewer's ordered lane, so each viewer sees
them in the same order; a slow viewer delays only itself.
"""

from __future__ import annotations

from collections import defaultdict

from .connection import Connection
from .replies import ReplyLog


class Rooms:
    """This instance's viewers of each conversation: join, leave, and publish a frame or a
    reply to every viewer of one. Holds references only; sends nothing itself."""

    def __init__(self) -> None:
        self._rooms: defaultdict[str, set[Connection]] = defaultdict(set)

    def join(self, conversation_id: str, conn: Connection) -> None:
        self._rooms[conversation_id].add(conn)

    def leave(self, conversation_id: str, conn: Connection) -> None:
        room = self._rooms.get(conversation_id)
        if room is not None:
            room.discard(conn)
            if not room:
                del self._rooms[conversation_id]

    def viewers(self, conversation_id: str) -> set[Connection]:
        return self._rooms.get(conversation_id, set())

    def publish(self, conversation_id: str, frame: str) -> None:
        """An event in conversation order (``user_message``, ``history_cleared``)."""
        for conn in self.viewers(conversation_id):
            conn.send_ordered(frame)

    def publish_reply(self, conversation_id: str, reply: ReplyLog) -> None:
        """A new reply: every viewer starts following it from its first step."""
        for conn in self.viewers(conversation_id):
            conn.follow(reply)
