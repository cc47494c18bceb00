"""The readiness cache: many probes within its period cost one check."""
from hocvu import health


def test_a_flood_of_probes_checks_once_per_cache_period():
    calls = []
    cached = health._Cached(lambda: calls.append(1) or True)
    assert all(cached.get() for _ in range(1000))
    assert len(calls) == 1


def test_a_failed_check_is_cached_too():
    calls = []
    cached = health._Cached(lambda: calls.append(1) and False)
    assert not any(cached.get() for _ in range(100))
    assert len(calls) == 1
