"""Capped exponential backoff with jitter, honouring a backend's Retry-After."""

from __future__ import annotations

import random

from attrs import define, field

__all__ = ["Backoff"]


@define
class Backoff:
    """Delays between attempts: ``base * factor**attempt``, at most ``cap``, minus up to ``jitter``.

    The jitter only shortens a delay, so ``cap`` is a true ceiling: with the defaults a
    tracker that recovers is tried again within 8 seconds, which keeps the 30-second delivery
    promise (5 s batch interval + 15 s of failures + at most 8 s of backoff) with margin.
    A ``retry_after`` from the backend replaces the computed delay.
    """

    base: float = 0.5
    factor: float = 2.0
    cap: float = 8.0
    jitter: float = 0.25
    rng: random.Random = field(factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts failures from 0)."""
        if retry_after is not None:
            return max(0.0, retry_after)
        raw = min(self.cap, self.base * self.factor ** min(attempt, 64))
        return raw * (1.0 - self.jitter * self.rng.random())
