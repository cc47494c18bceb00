"""A handler that fails is retried with backoff, then dead-lettered; nothing is dropped."""
import pytest
import pymongo
import requests

from services.lessons.service import LessonsService
from tests.integration.test_lessons_service import learner_enrolled
from tests.support.fixtures import base_url
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

QUEUE = "evt-enrollment-learner_enrolled--lessons.assign_lessons"


@pytest.fixture
def lessons(service_config, run_service):
    config = service_config("lessons", RETRY_DELAYS_SECONDS="1,2")
    container = run_service(LessonsService, config)
    db = pymongo.MongoClient(config["MONGO_URI"])[config["MONGO_DATABASE"]]
    return base_url(container), db


def test_a_failure_that_clears_is_retried_until_it_succeeds(lessons, pika_client, issuer):
    url, db = lessons
    # the course is not in the catalog yet: assigning fails until it appears
    pika_client.publish("enrollment.events", "learner_enrolled",
                        learner_enrolled(course_id="late-course"))
    wait_for(lambda: pika_client.depth("hocvu.retry.1s") == 1, timeout=5,
             what="the first retry waiting in its delay queue")
    course = db.courses.find_one({"_id": "citizen-digital-basics"})
    db.courses.insert_one({**course, "_id": "late-course"})

    plan = wait_for(lambda: requests.get(f"{url}/api/lessons/enrollments/enr-1",
                                         headers=issuer.facilitator()).ok,
                    timeout=15, what="the plan after a retry")
    assert plan
    assert pika_client.depth(f"{QUEUE}.dlq") == 0


def test_a_failure_that_persists_ends_in_the_dead_letter_queue(lessons, pika_client, issuer):
    url, _ = lessons
    pika_client.publish("enrollment.events", "learner_enrolled",
                        learner_enrolled(course_id="never-a-course"))
    dead = wait_for(lambda: pika_client.drain_with_headers(f"{QUEUE}.dlq"), timeout=20,
                    what="the dead letter after 3 attempts")
    headers, _ = dead[0]
    assert headers["x-hocvu-attempts"] == 3
    assert "UnknownCourse" in headers["x-hocvu-reason"]
    assert headers["x-hocvu-exchange"] == "enrollment.events"
    assert headers["x-hocvu-routing-key"] == "learner_enrolled"
    assert requests.get(f"{url}/api/lessons/enrollments/enr-1",
                        headers=issuer.province_admin()).status_code == 404
