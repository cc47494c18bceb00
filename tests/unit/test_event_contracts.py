"""The event envelope and the contracts between services."""
import inspect
import json

import pytest

from hocvu import contracts
from hocvu.events import MalformedEvent, new_event, parse_event
from hocvu.messaging import EventSubscriber
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
from services.certificates.service import CertificatesService
from services.enrollment.service import EnrollmentService
from services.identity.service import IdentityService
from services.lessons.service import LessonsService
from services.notifications.service import NotificationsService
from services.reporting.service import ReportingService
from tests.faults.test_faults import SAMPLES

SERVICES = [EnrollmentService, LessonsService, CertificatesService, NotificationsService,
            IdentityService, ReportingService]


@pytest.mark.parametrize("event_type", sorted(SAMPLES))
def test_an_event_survives_the_wire(event_type):
    envelope = new_event(event_type, SAMPLES[event_type], correlation_id="corr")
    wire = json.loads(json.dumps(envelope))
    event = parse_event({**wire, "added_later": 1, "data": {**wire["data"], "new": 2}},
                        event_type)
    assert event.event_type == event_type and event.correlation_id == "corr"
    assert "new" not in event.data  # a tolerant reader drops what it does not know


def test_malformed_events_are_refused_with_a_reason():
    good = json.loads(json.dumps(new_event("learner_contact_registered",
                                           SAMPLES["learner_contact_registered"], "c")))
    cases = [
        ([1, 2], "event body must be a JSON object"),
        ({k: v for k, v in good.items() if k != "event_id"}, "invalid event envelope"),
        ({**good, "data": {**good["data"], "phone": "0912345678"}}, "invalid"),
    ]
    for body, reason in cases:
        with pytest.raises(MalformedEvent) as error:
            parse_event(body, "learner_contact_registered")
        assert reason in error.value.reason
    with pytest.raises(MalformedEvent):
        parse_event(good, "learner_enrolled")  # the wrong event type on this queue


def test_a_producer_cannot_publish_data_that_breaks_the_contract():
    with pytest.raises(ValueError):
        new_event("course_completed", {"enrollment_id": "e"}, "c")


def test_the_subscribers_table_matches_the_services_handlers():
    declared = set()
    for service in SERVICES:
        for name, method in inspect.getmembers(service, inspect.isfunction):
            for entrypoint in getattr(method, ENTRYPOINT_EXTENSIONS_ATTR, ()):
                if isinstance(entrypoint, EventSubscriber):
                    assert contracts.SOURCES[entrypoint.event_type] == entrypoint.source_service
                    declared.add((entrypoint.event_type, service.name, name))
    table = {(event_type, service, method) for event_type, subscribers in
             contracts.SUBSCRIBERS.items() for service, method in subscribers}
    assert declared == table
    assert set(contracts.SOURCES) == set(contracts.SUBSCRIBERS) == set(contracts.EVENT_TYPES)


def test_no_contract_carries_a_national_id():
    for event_type in contracts.EVENT_TYPES:
        assert not any("national" in field for field in contracts.schema_for(event_type).fields)
