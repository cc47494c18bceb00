"""The operations CLI against a real RabbitMQ: list, show, replay and purge dead letters."""
import json
import os
import subprocess
import sys

import pika
import pytest

from hocvu import messaging
from hocvu_tools.devstack.processes import REPO

pytestmark = pytest.mark.integration

QUEUE = "evt-lessons-course_completed--certificates.issue_certificate"
DLQ = f"{QUEUE}.dlq"


def cli(amqp_uri, *args, stdin=subprocess.DEVNULL):
    return subprocess.run([sys.executable, "-m", "hocvu_tools.ops", *args], cwd=REPO,
                          env={**os.environ, "AMQP_URI": amqp_uri}, stdin=stdin,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def dead_letters(pika_client):
    channel = pika_client.channel
    channel.queue_declare(QUEUE, durable=True)
    channel.queue_declare(DLQ, durable=True)
    bodies = [json.dumps({"event_id": f"ev-{n}", "event_type": "course_completed",
                          "data": {"phone": "+84912345678"}}).encode() for n in range(3)]
    bodies.append(b"{not json")
    for n, body in enumerate(bodies):
        channel.basic_publish("", DLQ, body, pika.BasicProperties(delivery_mode=2, headers={
            messaging.REASON: f"reason {n}", messaging.ATTEMPTS: 7,
            messaging.FAILED_AT: "2026-11-25T02:00:00.000Z", messaging.ORIGINAL_QUEUE: QUEUE,
            messaging.ORIGINAL_EXCHANGE: "lessons.events",
            messaging.ORIGINAL_ROUTING_KEY: "course_completed",
            messaging.SERVICE: "certificates"}))
    return bodies


def test_list_counts_every_dead_letter_queue(amqp_uri, dead_letters):
    answer = cli(amqp_uri, "dlq", "list")
    assert answer.returncode == 0, answer.stderr
    line = next(l for l in answer.stdout.splitlines() if l.startswith(DLQ))
    assert line.split()[-1] == "4"
    assert "not declared yet" in answer.stdout  # the other queues of a fresh vhost


def test_show_reads_without_removing_and_masks_phone_numbers(amqp_uri, dead_letters, pika_client):
    answer = cli(amqp_uri, "dlq", "show", QUEUE, "--json")
    assert answer.returncode == 0, answer.stderr
    shown = json.loads(answer.stdout)
    assert [s["event_id"] for s in shown] == ["ev-0", "ev-1", "ev-2", None]
    assert [s["reason"] for s in shown] == ["reason 0", "reason 1", "reason 2", "reason 3"]
    assert "+84912345678" not in answer.stdout and "5678" in shown[0]["body"]
    assert pika_client.depth(DLQ) == 4
    text = cli(amqp_uri, "dlq", "show", DLQ)
    assert "reason 3" in text.stdout and "attempts: 7" in text.stdout


def test_replay_one_then_all(amqp_uri, dead_letters, pika_client):
    one = cli(amqp_uri, "dlq", "replay", QUEUE, "--event-id", "ev-1")
    assert one.returncode == 0, one.stderr
    assert "replayed 1, left 3" in one.stdout
    back = pika_client.drain_with_headers(QUEUE)
    assert [body for _, body in back] == [dead_letters[1]]
    headers = back[0][0]
    assert headers[messaging.ATTEMPTS] == 0 and headers["x-hocvu-replayed-at"]
    assert headers["x-hocvu-previous-reason"] == "reason 1"
    remaining = json.loads(cli(amqp_uri, "dlq", "show", QUEUE, "--json").stdout)
    assert [s["event_id"] for s in remaining] == ["ev-0", "ev-2", None]  # order kept

    everything = cli(amqp_uri, "dlq", "replay", QUEUE, "--all")
    assert "replayed 3, left 0" in everything.stdout
    assert pika_client.depth(DLQ) == 0 and pika_client.depth(QUEUE) == 3


def test_purge_needs_confirmation(amqp_uri, dead_letters, pika_client):
    refused = cli(amqp_uri, "dlq", "purge", QUEUE)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert pika_client.depth(DLQ) == 4
    purged = cli(amqp_uri, "dlq", "purge", QUEUE, "--yes")
    assert purged.returncode == 0 and "purged 4" in purged.stdout
    assert pika_client.depth(DLQ) == 0


def test_unknown_queue_and_unreachable_broker_are_clear_errors(amqp_uri):
    unknown = cli(amqp_uri, "dlq", "show", "no-such-queue")
    assert unknown.returncode == 2 and "no such queue" in unknown.stderr
    unreachable = cli("amqp://guest:guest@127.0.0.1:1/", "dlq", "list")
    assert unreachable.returncode == 2 and "cannot reach RabbitMQ" in unreachable.stderr
