"""hocvu.metrics: what a scrape serves, whatever a reader of the store does."""
from datetime import datetime, timedelta, timezone

from prometheus_client import generate_latest

from hocvu import metrics


def test_a_failing_reader_is_left_out_and_the_others_are_served():
    def broken():
        raise TimeoutError("store away")
        yield  # a generator, as the readers are

    metrics.on_scrape("unit", "broken", broken)
    metrics.on_scrape("unit", "outbox", lambda: [
        metrics.gauge("hocvu_outbox_relay_leader", "pending", "unit", 1)])
    try:
        text = metrics.response().get_data(as_text=True)
        assert 'hocvu_outbox_relay_leader{service="unit"} 1.0' in text
        # a second registration replaces the first (a restarted container)
        metrics.on_scrape("unit", "outbox", lambda: [
            metrics.gauge("hocvu_outbox_relay_leader", "pending", "unit", 0)])
        text = generate_latest().decode()
        assert 'hocvu_outbox_relay_leader{service="unit"} 0.0' in text
        assert 'hocvu_outbox_relay_leader{service="unit"} 1.0' not in text
    finally:
        metrics.forget("unit", "broken")
        metrics.forget("unit", "outbox")
    assert 'service="unit"' not in generate_latest().decode()


def test_labelled_gauges_and_counts():
    family = metrics.gauge("hocvu_sms_messages", "by status", "unit",
                           {("queued",): 2, ("delivered",): 5}, ("status",))
    assert {(s.labels["status"], s.value) for s in family.samples} == {("queued", 2), ("delivered", 5)}
    metrics.event_consumed("unit", "lesson_completed", "retried", 0.2)
    metrics.event_consumed("unit", "lesson_completed", "dead_lettered")
    text = generate_latest().decode()
    assert ('hocvu_events_consumed_total{event_type="lesson_completed",outcome="retried",'
            'service="unit"} 1.0') in text
    assert ('hocvu_event_handler_duration_seconds_count{event_type="lesson_completed",'
            'service="unit"} 1.0') in text  # a dead letter set aside unhandled has no duration


def test_lag_is_counted_from_a_stored_time_naive_or_aware():
    an_hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    for moment in (an_hour_ago, an_hour_ago.replace(tzinfo=None)):
        assert 3599 < metrics.seconds_since(moment) < 3700
