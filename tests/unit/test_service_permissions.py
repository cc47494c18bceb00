"""The broker permissions of each service's user, read as RabbitMQ reads them (a regular
expression matched against the whole resource name)."""
import re

import pytest

from hocvu_tools.devstack import rabbitmq


def allowed(service: str, permission: str, resource: str) -> bool:
    return re.search(rabbitmq.service_permissions(service)[permission], resource) is not None


@pytest.mark.parametrize("permission, resource", [
    ("configure", "lessons.events"),
    ("configure", "evt-enrollment-learner_enrolled--lessons.assign_lessons"),
    ("configure", "evt-enrollment-learner_enrolled--lessons.assign_lessons.dlq"),
    ("configure", "evt-lessons-course_completed--certificates.issue_certificate"),  # fed
    ("configure", "enrollment.events"),  # the exchange of an event it consumes
    ("configure", "hocvu.retry.300s"),
    ("write", "lessons.events"), ("write", "amq.default"), ("write", "hocvu.retry.1s"),
    ("read", "evt-enrollment-learner_enrolled--lessons.assign_lessons"),
    ("read", "enrollment.events"), ("read", "lessons.events"),
    # its instances' nudges (hocvu.nudges): its own exchange, a queue per instance
    ("configure", "lessons.nudges"), ("write", "lessons.nudges"), ("read", "lessons.nudges"),
    ("configure", "lessons.nudges.0123456789abcdef0123456789abcdef"),
    ("write", "lessons.nudges.0123456789abcdef0123456789abcdef"),
    ("read", "lessons.nudges.0123456789abcdef0123456789abcdef"),
])
def test_lessons_may_do_its_job(permission, resource):
    assert allowed("lessons", permission, resource)


@pytest.mark.parametrize("permission, resource", [
    ("read", "evt-lessons-course_published--enrollment.remember_course"),
    ("read", "evt-enrollment-learner_enrolled--notifications.confirm_enrollment"),
    ("read", "evt-enrollment-learner_enrolled--lessons.assign_lessons.dlq"),
    ("read", "certificates.events"),
    ("write", "enrollment.events"), ("write", "certificates.events"), ("write", "amq.topic"),
    ("configure", "certificates.events"), ("configure", "lessons-snoop"),
    ("configure", "evt-enrollment-learner_enrolled--notifications.confirm_enrollment"),
    ("configure", "xlessons.events"), ("configure", "lessons.eventsx"),
    ("configure", "hocvu.retry.300sx"),
    ("write", "notifications.nudges"),
    ("read", "notifications.nudges.0123456789abcdef0123456789abcdef"),
    ("configure", "lessons.nudges.anything"), ("read", "lessons.nudges.x"),
])
def test_lessons_may_do_nothing_else(permission, resource):
    assert not allowed("lessons", permission, resource)


def test_every_service_in_the_contracts_gets_a_user():
    assert set(rabbitmq.known_services()) >= {"enrollment", "lessons", "certificates",
                                              "notifications"}


def test_user_names_keep_throwaway_hosts_apart():
    assert rabbitmq.service_user_name("lessons", "/") == "hocvu-lessons"
    assert rabbitmq.service_user_name("lessons", "t-1") == "hocvu-lessons@t-1"
