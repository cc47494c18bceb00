"""The services' rules in plain Python: no broker, no store."""
import unicodedata
from datetime import datetime, timezone

import pytest
import yaml

from services.certificates import domain as certificates
from services.enrollment import identity
from services.enrollment.schemas import EnrollmentIn
from services.lessons import domain as lessons
from services.lessons.repository import SEED_FILE
from services.notifications import sms, templates

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("raw", ["0912345678", "+84912345678", "84912345678", "0912 345 678",
                                 "091.234.5678", "(091) 234-5678"])
def test_phone_numbers_in_any_usual_form_become_e164(raw):
    assert identity.normalize_phone(raw) == "+84912345678"


@pytest.mark.parametrize("raw", ["01234567890", "0243826 1234", "091234567", "+14155552671",
                                 "hello", ""])
def test_old_landline_short_foreign_or_garbage_numbers_are_refused(raw):
    with pytest.raises(identity.InvalidPhone):
        identity.normalize_phone(raw)


def test_a_citizen_id_encodes_province_century_sex_and_birth_year():
    assert identity.national_id_problems("038195001234", 1995) == []   # woman born 1995
    assert identity.national_id_problems("038203001234", 2003) == []   # man born 2003
    assert identity.national_id_problems("038195001234", 1996) == [
        "encodes birth year 1995, not 1996"]
    assert identity.national_id_problems("999195001234", None) == [
        "starts with 999, which is no province code"]
    assert identity.national_id_problems("03819500123", None) == ["must be exactly 12 digits"]


def test_the_national_id_hash_is_keyed_and_stable():
    digest = identity.national_id_digest("038195001234", b"k" * 32)
    assert digest == identity.national_id_digest("038195001234", b"k" * 32)
    assert digest != identity.national_id_digest("038195001234", b"j" * 32)
    assert "038195001234" not in digest


def test_names_are_stored_composed_with_single_spaces():
    decomposed = unicodedata.normalize("NFD", "Nguyễn   Thị  Hoa ")
    assert identity.normalize_name(decomposed) == "Nguyễn Thị Hoa"
    assert identity.name_problems("Nguyễn Thị Hoa") == []
    assert identity.name_problems("R2-D2") != []


def enrollment_body(**learner):
    return {"course_id": "citizen-digital-basics", "learner": {
        "full_name": "Nguyễn Thị Hoa", "phone": "0912345678", "national_id": "038195001234",
        "birth_year": 1995, "group": "citizen", "province_code": "38", "commune_code": "14845",
        **learner}}


def test_a_valid_enrollment_body_is_normalized():
    loaded = EnrollmentIn().load(enrollment_body(phone="84 912 345 678"))
    assert loaded["learner"]["phone"] == "+84912345678"


def test_every_bad_field_is_named():
    from marshmallow import ValidationError
    with pytest.raises(ValidationError) as error:
        EnrollmentIn().load(enrollment_body(group="pirate", province_code="99",
                                            commune_code="1", birth_year=1996))
    assert set(error.value.messages["learner"]) == {"group", "province_code", "commune_code",
                                                    "national_id"}


def test_the_seed_catalog_has_a_course_per_group_with_ordered_lessons():
    courses = [lessons.Course.from_seed(c) for c in yaml.safe_load(SEED_FILE.read_text())["courses"]]
    assert sorted(c.group for c in courses) == ["citizen", "official", "student", "worker"]
    lesson_ids = [l.id for c in courses for l in c.lessons]
    assert len(lesson_ids) == len(set(lesson_ids))
    for course in courses:
        assert len(course.lessons) >= 3
        assert [l.position for l in course.lessons] == list(range(1, len(course.lessons) + 1))


def plan():
    course = lessons.Course.from_seed({"id": "c", "title": "Kỹ năng số", "group": "worker",
                                       "lessons": [{"id": f"l{n}", "title": f"Bài {n}"}
                                                   for n in (1, 2, 3)]})
    learner = lessons.Learner("lrn", "Lê Văn Đức", "worker", "38", "14845")
    return lessons.LessonPlan.assign("enr", course, learner, "corr", NOW)


def test_assigning_a_course_announces_its_lessons():
    assigned, events = plan()
    assert [e for e, _ in events] == ["lessons_assigned"]
    assert events[0][1]["lesson_ids"] == ["l1", "l2", "l3"]
    assert not assigned.completed


def test_completing_the_last_lesson_completes_the_course_once():
    assigned, _ = plan()
    assert [e for e, _ in assigned.complete_lesson("l3", 70, NOW)] == ["lesson_completed"]
    assert assigned.complete_lesson("l3", 70, NOW) == []      # twice: nothing happens
    assert [e for e, _ in assigned.complete_lesson("l1", None, NOW)] == ["lesson_completed"]
    events = assigned.complete_lesson("l2", 100, NOW)
    assert [e for e, _ in events] == ["lesson_completed", "course_completed"]
    assert events[1][1]["full_name"] == "Lê Văn Đức" and events[1][1]["commune_code"] == "14845"
    assert assigned.completed and assigned.complete_lesson("l2", 100, NOW) == []
    with pytest.raises(lessons.UnknownLesson):
        assigned.complete_lesson("nope", None, NOW)


KEYS = certificates.CodeKeys("k" * 32)


def test_verification_codes_are_random_signed_readable_and_forgiving_when_typed():
    codes = {KEYS.new_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(len(c) == 16 and set(c) <= set(certificates.CODE_ALPHABET) for c in codes)
    assert all(KEYS.is_signed(c) for c in codes)
    assert certificates.display_code("K7QM2XRT9BH4C3VA") == "K7QM-2XRT-9BH4-C3VA"
    assert certificates.normalize_code("k7qm 2xrt-9bh4 c3va") == "K7QM2XRT9BH4C3VA"
    assert certificates.normalize_code("O1IL-0000-0000") == "0111" + "0" * 8   # a legacy code
    assert certificates.normalize_code("UUUU-UUUU-UUUU") is None
    assert certificates.normalize_code("K7QM") is None
    assert certificates.serial_number("38", 2026, 123) == "HV-38-2026-000123"


def test_sms_go_out_unaccented_in_gsm7_and_segments_are_counted():
    text = sms.compose("Đăng ký thành công")
    assert (text.text, text.encoding, text.segments) == ("Dang ky thanh cong", "GSM7", 1)
    assert sms.compose("a" * 160).segments == 1
    assert sms.compose("a" * 161).segments == 2
    assert sms.compose("a" * 306).segments == 2 and sms.compose("a" * 307).segments == 3
    assert sms.compose("[" * 80).segments == 1 and sms.compose("[" * 81).segments == 2
    vietnamese = sms.compose("ă" * 70, unaccented=False)
    assert (vietnamese.encoding, vietnamese.segments) == ("UCS2", 1)
    assert sms.compose("ă" * 71, unaccented=False).segments == 2


def test_templates_carry_the_values():
    text = templates.render(templates.CERTIFICATE_ISSUED, full_name="Lê Văn Đức",
                            course_title="Kỹ năng số", verification_code="K7QM-2XRT-9BH4",
                            verify_url="http://x/v")
    assert "Lê Văn Đức" in text and "K7QM-2XRT-9BH4" in text and "http://x/v" in text


def test_the_revocation_sms_says_which_certificate_when_and_why_in_vietnam_s_day():
    revoked_on = templates.vietnamese_day(datetime(2026, 11, 25, 18, 0, tzinfo=timezone.utc))
    assert revoked_on == "26/11/2026"
    text = templates.render(templates.CERTIFICATE_REVOKED, full_name="Lê Văn Đức",
                            course_title="Kỹ năng số", serial="HV-38-2026-000123",
                            revoked_on=revoked_on, reason="Cấp nhầm người")
    assert all(part in text for part in ("Lê Văn Đức", "HV-38-2026-000123", "26/11/2026",
                                         "Cấp nhầm người", "thu hồi"))


def test_the_backoff_doubles_from_the_first_pause_up_to_the_longest():
    from hocvu import backoff
    assert [backoff.exponential(n, 60, first=2) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    assert [backoff.exponential(n, 30) for n in range(1, 7)] == [1, 2, 4, 8, 16, 30]
    with pytest.raises(ValueError):
        backoff.exponential(0, 30)
