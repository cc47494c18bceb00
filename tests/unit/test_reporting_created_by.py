"""The document an enrollment's first fact inserts in reporting's store: the one upserting
its change would have created (services/reporting/domain.py)."""
from services.reporting import domain


def test_an_enrollment_fact_creates_what_its_upsert_would():
    change = domain.enrollment_change("learner_enrolled", {
        "enrollment_id": "enr-1", "day": "2026-12-07", "province_code": "38",
        "commune_code": "14845", "group": "worker", "course_id": "c", "age_band": "25-34"})
    assert domain.created_by("enr-1", change) == {
        "_id": "enr-1", "enrolled_on": "2026-12-07", "province_code": "38",
        "commune_code": "14845", "group": "worker", "course_id": "c", "age_band": "25-34"}


def test_a_lesson_before_its_enrollment_creates_the_nested_day():
    change = domain.enrollment_change("lesson_completed", {
        "enrollment_id": "enr-1", "lesson_id": "l-1", "day": "2026-12-08"})
    assert domain.created_by("enr-1", change) == {
        "_id": "enr-1", "lessons": {domain.lesson_key("l-1"): "2026-12-08"}}
