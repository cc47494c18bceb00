"""How long to wait before trying again: the one backoff rule of the platform's retries (the
relay's unroutable event, the SMS dispatcher's provider, `make run`'s restarts).

The SMS gateway simulator keeps its own: it plays a provider, whose retry policy is not ours.
Event handlers retry through RabbitMQ's delay queues instead (RETRY_DELAYS_SECONDS), and
queue consumers reconnect on kombu's linear steps (hocvu.messaging)."""


def exponential(attempt: int, longest: float, first: float = 1.0) -> float:
    """The pause after failed try number `attempt` (1, 2, ...): `first`, then twice as long
    each time, at most `longest`."""
    if attempt < 1:
        raise ValueError("attempts are counted from 1")
    return min(first * 2 ** (attempt - 1), longest)
