"""Events as their producers publish them, for reporting's tests: built with the same
contracts (hocvu.events.new_event), each with the place, group and day asked for."""
from datetime import datetime, timedelta, timezone

from hocvu.events import new_event

# noon in Vietnam, so that the day in Asia/Ho_Chi_Minh is the date given
NOON_IN_VIETNAM = timedelta(hours=5)


def at(day: str, minutes: int = 0) -> datetime:
    return (datetime.fromisoformat(day).replace(tzinfo=timezone.utc) + NOON_IN_VIETNAM
            + timedelta(minutes=minutes))


def _learner(enrollment_id: str, group: str, commune: str, province: str = "38") -> dict:
    return {"enrollment_id": enrollment_id, "learner_id": f"lrn-{enrollment_id}",
            "course_id": f"{group}-digital-basics", "group": group, "province_code": province,
            "commune_code": commune}


def learner_enrolled(enrollment_id, group, commune, day, birth_year=1990, province="38"):
    return ("enrollment", new_event("learner_enrolled", {
        **_learner(enrollment_id, group, commune, province), "course_title": "Kỹ năng số",
        "full_name": "Nguyễn Văn An", "learner_subject": "learner:" + "a" * 32,
        "enrolled_at": at(day), "birth_year": birth_year}, f"corr-{enrollment_id}"))


def lesson_completed(enrollment_id, lesson_id, day):
    return ("lessons", new_event("lesson_completed", {
        "enrollment_id": enrollment_id, "learner_id": f"lrn-{enrollment_id}",
        "course_id": "any-course", "lesson_id": lesson_id, "score": 90,
        "completed_at": at(day, 30)}, f"corr-{enrollment_id}"))


def course_completed(enrollment_id, group, commune, day, province="38"):
    return ("lessons", new_event("course_completed", {
        **_learner(enrollment_id, group, commune, province), "course_title": "Kỹ năng số",
        "full_name": "Nguyễn Văn An", "completed_at": at(day, 40)}, f"corr-{enrollment_id}"))


def certificate_issued(enrollment_id, commune, day, province="38"):
    return ("certificates", new_event("certificate_issued", {
        "enrollment_id": enrollment_id, "learner_id": f"lrn-{enrollment_id}",
        "course_id": "any-course", "certificate_id": f"cert-{enrollment_id}",
        "serial": f"HV-38-2026-{enrollment_id}", "verification_code": "K7QM2XRT9BH4",
        "course_title": "Kỹ năng số", "full_name": "Nguyễn Văn An", "issued_at": at(day, 50),
        "verify_url": "http://verify.example.test/v/K7QM2XRT9BH4", "province_code": province,
        "commune_code": commune}, f"corr-{enrollment_id}"))


def certificate_revoked(enrollment_id, group, commune, day, province="38"):
    return ("certificates", new_event("certificate_revoked", {
        **_learner(enrollment_id, group, commune, province),
        "certificate_id": f"cert-{enrollment_id}", "serial": f"HV-38-2026-{enrollment_id}",
        "full_name": "Nguyễn Văn An", "course_title": "Kỹ năng số",
        "reason": "issued by mistake", "revoked_at": at(day, 60)}, f"corr-{enrollment_id}"))


def enrollment_cancelled(enrollment_id, group, commune, day, province="38"):
    return ("enrollment", new_event("enrollment_cancelled", {
        **_learner(enrollment_id, group, commune, province), "cancelled_at": at(day, 70),
        "cancelled_by": "staff"}, f"corr-{enrollment_id}"))


def sms_outcome(message_id, enrollment_id, group, commune, day, status="delivered",
                province="38"):
    return ("notifications", new_event("sms_outcome", {
        "message_id": message_id, "template": "enrollment_confirmed", "status": status,
        "enrollment_id": enrollment_id, "province_code": province, "commune_code": commune,
        "group": group, "settled_at": at(day, 80)}, f"corr-{enrollment_id}"))


def publish(pika_client, *events) -> None:
    for source, event in events:
        pika_client.publish(f"{source}.events", event["event_type"], event)
