"""The OpenAPI documents describe every route with the schemas the routes really use."""
import json

import pytest

from hocvu.openapi import build, routes
from services.certificates.service import CertificatesService
from services.enrollment.service import EnrollmentService
from services.identity.service import IdentityService
from services.lessons.service import LessonsService
from services.notifications.service import NotificationsService
from services.reporting.service import ReportingService

SERVICES = [EnrollmentService, LessonsService, CertificatesService, NotificationsService,
            IdentityService, ReportingService]


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_every_route_is_documented_under_the_service_prefix(service):
    document = build(service, service.name)
    operators = build(service, service.name, operators=True)
    json.dumps(document)  # serialisable as served
    assert document["openapi"] == operators["openapi"] == "3.0.3"

    def documented(doc):
        return {(path, verb) for path, operations in doc["paths"].items() for verb in operations}

    declared = {(route.url.replace("<", "{").replace(">", "}"), route.method.lower())
                for _, route in routes(service)}
    # every route in exactly one of them: a client's document has what the edge routes
    assert documented(document) | documented(operators) == declared
    assert not documented(document) & documented(operators)
    assert all(path.startswith(f"/api/{service.name}/") for path, _ in declared)
    operations = {f"/api/{service.name}/{route}" for route in ("health/live", "health/ready",
                                                                 "metrics")}
    assert {path for path, _ in documented(operators)} == operations
    assert (f"/api/{service.name}/openapi.json", "get") in documented(document)


def test_the_enrollment_body_is_described_field_by_field():
    document = build(EnrollmentService, "enrollment")
    post = document["paths"]["/api/enrollment/enrollments"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/EnrollmentIn"}
    learner = document["components"]["schemas"]["LearnerIn"]
    assert set(learner["required"]) == {"full_name", "phone", "national_id", "birth_year",
                                        "group", "province_code", "commune_code"}
    assert learner["properties"]["group"]["enum"] == ["official", "student", "worker", "citizen"]
    assert set(post["responses"]) == {"201", "400", "401", "403", "404", "405", "409", "429", "500",
                                      "503"}
    assert post["security"] == [{"bearerToken": []}]
    assert post["responses"]["409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorOut"}


def test_path_parameters_are_declared():
    document = build(LessonsService, "lessons")
    complete = document["paths"][
        "/api/lessons/enrollments/{enrollment_id}/lessons/{lesson_id}/complete"]["post"]
    assert [p["name"] for p in complete["parameters"]] == ["enrollment_id", "lesson_id"]


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_every_operation_says_who_may_call_it(service):
    document = build(service, service.name)
    for path, operations in document["paths"].items():
        for verb, operation in operations.items():
            assert "security" in operation, (path, verb)
            assert operation["description"].startswith("Who may call it: "), (path, verb)
            if operation["security"]:
                assert "401" in operation["responses"], (path, verb)


def test_an_optional_body_is_documented_as_optional():
    document = build(LessonsService, "lessons")
    complete = document["paths"][
        "/api/lessons/enrollments/{enrollment_id}/lessons/{lesson_id}/complete"]["post"]
    assert complete["requestBody"]["required"] is False
    score = document["components"]["schemas"]["CompleteLessonIn"]["properties"]["score"]
    assert (score["minimum"], score["maximum"], score["nullable"]) == (0, 100, True)


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_every_operation_declares_405_with_allow(service):
    document = build(service, service.name)
    for path, operations in document["paths"].items():
        for verb, operation in operations.items():
            assert "Allow" in operation["responses"]["405"]["headers"], (path, verb)
            assert {"429", "500"} <= set(operation["responses"]), (path, verb)


@pytest.mark.parametrize("service, path", [
    (EnrollmentService, "/api/enrollment/enrollments"),
    (CertificatesService, "/api/certificates/certificates"),
    (NotificationsService, "/api/notifications/messages")], ids=lambda v: getattr(v, "name", ""))
def test_lists_state_their_query_parameters_typed_and_bounded(service, path):
    parameters = {p["name"]: p for p in build(service, service.name)["paths"][path]["get"]["parameters"]}
    assert parameters["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100,
                                             "default": 50}
    assert parameters["cursor"]["schema"]["pattern"]
    assert all(p["in"] == "query" and p["required"] is False for p in parameters.values())
    if service is EnrollmentService:
        assert parameters["commune_code"]["schema"]["pattern"] == "^[0-9]{5}$"


def test_the_learner_states_the_rules_the_server_enforces():
    learner = build(EnrollmentService, "enrollment")["components"]["schemas"]["LearnerIn"]
    properties = learner["properties"]
    assert (properties["full_name"]["minLength"], properties["full_name"]["maxLength"]) == (2, 100)
    assert properties["national_id"]["pattern"].startswith("^(001|002")
    assert properties["birth_year"]["minimum"] == 1900
    assert len(properties["province_code"]["enum"]) == 34
    assert properties["phone"]["pattern"]
