"""python -m hocvu_tools.ops sms: stuck and failed SMS read from notifications' real store."""
import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest

from hocvu.clock import utcnow
from hocvu_tools.devstack.processes import REPO
from services.notifications import domain, repository

pytestmark = pytest.mark.integration


def cli(mongo_uri, database, *args):
    return subprocess.run([sys.executable, "-m", "hocvu_tools.ops", "sms", "--mongo-uri", mongo_uri,
                           "--database", database, *args], cwd=REPO, env=os.environ,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


def test_stuck_and_failed_messages_with_their_reasons(notifications_store, mongo_uri):
    now = utcnow()
    hour_ago = now - timedelta(hours=1)

    db = notifications_store.db

    def message(_id, status, **fields):
        """A message written as the platform writes it, then taken to `status`."""
        record = {"_id": _id, "dedupe_key": _id, "template": fields.pop("template",
                                                                          "enrollment_confirmed"),
                  "learner_id": f"lrn-{_id}", "enrollment_id": "enr",
                  "to": None if status == "awaiting_contact" else "+84912345678", "lane": 2,
                  "created_at": fields.pop("created_at", hour_ago), "attempts": 0}
        repository.create_documents(db, [record], record["created_at"])
        if status == "queued":
            db.sms_queue.update_one({"_id": _id}, {"$set": fields})
        elif status != "awaiting_contact":
            kind = domain.GATEWAY_UNDELIVERED if status == "undelivered" else status
            db.sms_queue.delete_one({"_id": _id})
            outcomes = [(domain.ACCEPTED, {"provider": "speedsms", "accepted_at": hour_ago})]
            if status != domain.ACCEPTED:
                outcomes.append((kind, fields))
            for done, done_fields in outcomes:
                repository.record(db, [(record, domain.Settlement(done, done_fields))],
                                  hour_ago)

    message("no-phone", "awaiting_contact")
    message("retrying", "queued", attempts=3, last_error="HTTP 503 UNAVAILABLE")
    message("no-report", "accepted")
    db.sms_rechecks.insert_one({"_id": "no-report", "next_check_at": now})  # still "pending"
    message("fresh", "queued", created_at=now)
    message("refused", "failed", last_error="eSMS 108 number malformed")
    message("opted-out", "suppressed", template="lesson_reminder", last_error="opted_out")
    message("lost", "unknown", last_error="no delivery report, and the provider's status "
                                          "could not be asked")
    message("fine", "delivered", delivered_at=hour_ago)
    database = notifications_store.db.name

    stuck = cli(mongo_uri, database, "stuck", "--json")
    assert stuck.returncode == 0, stuck.stderr
    rows = {row["id"]: row for row in json.loads(stuck.stdout)}
    assert set(rows) == {"no-phone", "retrying", "no-report"}
    assert rows["no-phone"]["reason"] == "waiting for the learner's phone number"
    assert rows["retrying"]["reason"] == "HTTP 503 UNAVAILABLE"
    assert rows["no-report"]["learner_status"] == "sent"
    assert rows["retrying"]["to"] == "+84*****5678"

    failed = cli(mongo_uri, database, "failed")
    assert failed.returncode == 0, failed.stderr
    assert failed.stdout.startswith("SMS failed, undelivered, suppressed or of unknown fate: 3")
    assert "id=refused  status=failed" in failed.stdout and "eSMS 108" in failed.stdout
    assert "reason=opted_out" in failed.stdout and "id=lost  status=unknown" in failed.stdout
    assert "912345678" not in failed.stdout  # numbers masked

    unreachable = subprocess.run(
        [sys.executable, "-m", "hocvu_tools.ops", "sms", "--mongo-uri",
         "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300", "stuck"],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert unreachable.returncode == 2 and "cannot read" in unreachable.stderr
