"""How often and how patiently every HTTP call of the tool retries.

One policy for the runtime downloads, the artifact service and the release
API: connection errors and 5xx back off exponentially up to a cap; a rate limit
(429, GitHub's 403) waits as long as the server asks, up to `rate_limit_cap`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Sleep = Callable[[float], None]

# Statuses worth another try: the server's trouble, not the request's.
SERVER_ERRORS = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # tries per request, the first included
    backoff: float = 1.0  # first wait in seconds
    multiplier: float = 2.0  # each later wait is this much longer
    backoff_cap: float = 30.0
    rate_limit_cap: float = 120.0  # longest wait a rate limit may ask for

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (counting from 1)."""
        return float(min(self.backoff * self.multiplier ** (attempt - 1), self.backoff_cap))


DEFAULT_RETRY = RetryPolicy()
