"""Admission: what a turn that starts a reply (``message``, ``regenerate``, ``edit``) passes
after its rules, and the claim it takes on its conversation.

The per-user cap is counted here and decided by :mod:`gateway.turn_rules` (pure); the rate
limit, the anonymous limit per client address, the daily quotas (section 12) and the
store's atomic claim are one step of the turn-writes seam
(:meth:`~gateway.stores.turn_writes.TurnWrites.admit_and_claim`); a quota's refusal is
worded by :func:`gateway.quotas.check_quota`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .config import Config
from .connection import Connection
from .conversations import Claim, Conversation
from .errors import RateLimited
from .metrics import Metrics
from .quotas import QuotaLimits, check_quota
from .stores.presence import Presence
from .stores.turn_writes import TurnAsk, TurnWrites
from .supervisor import ReplySupervisor
from .usage import utc_day

_NO_DAY = utc_day(0.0)  # (no quota: today's spend is not read)


@dataclass(eq=False, slots=True)
class TurnAdmission:
    """The I/O shell that admits a turn and holds its claim until a reply task does.

    Contract: :meth:`user_running` counts a user's replies here and on the other instances
    (for the rules' per-user cap). :meth:`admit_and_claim` raises
    :class:`~gateway.errors.RateLimited` or the quota's refusal (what was counted before it
    stays counted), or returns the store's claim whatever its outcome (started, busy,
    duplicate: the caller decides). :meth:`release_unstarted` frees a claim no reply task
    holds, so whatever fails before the supervisor takes the reply, the conversation is
    never left busy.
    """

    config: Config
    turn_writes: TurnWrites
    presence: Presence
    supervisor: ReplySupervisor
    metrics: Metrics
    instance: str
    _quotas: dict[str, QuotaLimits] = field(default_factory=dict, init=False)  # per assistant

    def user_running(self, user: str) -> int:
        """The user's replies running here and on the other instances."""
        return self.supervisor.running_for(user) + self.presence.replies_elsewhere(user)

    async def admit_and_claim(
        self,
        conn: Connection,
        conv: Conversation,
        message_id: str,
        client_id: str,
        interrupt: bool,
    ) -> Claim:
        """The rate limit, the anonymous limit per client address and the daily quotas,
        then the store's atomic claim, in one step of the turn-writes seam (raise the
        refusal, or return the claim)."""
        limits = self.config.limits
        quotas = self._quotas.get(conv.assistant)
        if quotas is None:  # the config is frozen: worked out once per assistant
            quotas = self._quotas[conv.assistant] = QuotaLimits.for_assistant(
                self.config, conv.assistant
            )
        now = time.time()
        ask = TurnAsk(
            conn.user,
            conn.address,
            limits.anonymous_messages_per_minute_per_ip,
            conv.assistant,
            quotas,
            utc_day(now) if quotas.any else _NO_DAY,
        )
        admission = await self.turn_writes.admit_and_claim(
            conv, ask, message_id, client_id, self.instance, interrupt=interrupt
        )
        if admission.outcome == "rate_limited":
            raise RateLimited(
                f"more than {limits.messages_per_minute} messages a minute; slow down"
            )
        if admission.outcome == "address_limited":
            raise RateLimited(
                f"more than {limits.anonymous_messages_per_minute_per_ip} messages a minute"
                " from your network; slow down"
            )
        if admission.outcome == "over_quota":
            assert admission.spent is not None  # (only quotas refuse so)
            refusal = check_quota(
                admission.spent, quotas, anonymous=conn.address is not None, now=now
            )
            if refusal is not None:
                self.metrics.quota_refusals.labels(refusal.quota).inc()
                raise refusal
        assert admission.claim is not None  # (claimed)
        return admission.claim

    async def release_unstarted(
        self, conv: Conversation, message_id: str, exc: BaseException
    ) -> None:
        """Whatever failed, a claim with no reply task behind it is freed here (the task,
        once it exists, frees it itself): the conversation is never left busy."""
        if not self.supervisor.runs(message_id):
            if isinstance(exc, Exception):
                await self.supervisor.release(conv, message_id)
            else:  # cancelled: no awaiting here
                self.supervisor.release_later(conv, message_id)
