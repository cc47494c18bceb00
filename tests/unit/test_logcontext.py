"""The log context is per greenthread: requests served at once never mix their ids."""
import logging

import eventlet

from hocvu import logcontext


def test_each_greenthread_sees_only_its_own_ids():
    def serve(n):
        with logcontext.bound(correlation_id=f"corr-{n}", event_id=f"evt-{n}"):
            eventlet.sleep(0.01 * (5 - n))  # finish in the reverse order of starting
            return logcontext.current()

    pool = eventlet.GreenPool()
    threads = [pool.spawn(serve, n) for n in range(5)]
    assert [t.wait() for t in threads] == [
        {"correlation_id": f"corr-{n}", "event_id": f"evt-{n}"} for n in range(5)]
    assert logcontext.current() == {}


def test_a_new_greenthread_starts_without_its_spawners_ids():
    with logcontext.bound(correlation_id="outer"):
        assert eventlet.spawn(logcontext.current).wait() == {}
        assert logcontext.current() == {"correlation_id": "outer"}


def test_the_filter_adds_only_known_ids_and_bounds_their_size():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    with logcontext.bound(correlation_id="c" * 500):
        assert logcontext.AddLogContext().filter(record)
    assert record.correlation_id == "c" * logcontext.MAX_ID_CHARS
    assert not hasattr(record, "event_id")


def test_the_correlation_id_is_the_callers_else_the_edges_else_a_new_one():
    assert logcontext.correlation_id_of({"X-Correlation-ID": "journey-0001",
                                         "X-Request-ID": "edge-0001"}) == "journey-0001"
    assert logcontext.correlation_id_of({"X-Request-ID": "0123456789abcdef"}) == "0123456789abcdef"
    # a malformed id of the caller's is not used; the edge's one is
    assert logcontext.correlation_id_of({"X-Correlation-ID": "a b\nforged line",
                                         "X-Request-ID": "edge-0001"}) == "edge-0001"
    fresh = {logcontext.correlation_id_of({"X-Correlation-ID": "short"}) for _ in range(2)}
    assert len(fresh) == 2 and all(len(value) == 32 for value in fresh)
