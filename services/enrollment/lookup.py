"""A class's list of those present, as national IDs or enrollment ids, to enrollment ids.

Attendance is recorded in lessons (POST /api/lessons/sessions), which knows enrollments but
never a national ID: enrollment keeps only their keyed hash, and its key stays here. So a
facilitator's list of national IDs is resolved here, for staff, to the enrollments in the
class's course that the caller may see; lessons then takes the ids. Reads only.
"""
import re

from hocvu.auth import Principal
from services.enrollment import bulk_csv

MAX_ROWS = 2000            # a class, or a site's morning: more is a mistake
MAX_BYTES = 1024 * 1024
NOT_FOUND = "no enrollment in this course, or not in your communes"


def resolve(db, national_id_hash, caller: Principal, course_id: str,
            parsed: bulk_csv.ParsedFile) -> dict:
    """{"items": [{row, enrollment_id}], "problems": [{row, field, message_vi, message_en}]}."""
    by_hash, by_id, problems = requested(parsed, national_id_hash)
    scope = {"province_code": 1, "commune_code": 1, "learner_subject": 1, "learner_id": 1}
    learners = {doc["_id"]: doc["national_id_hash"] for doc in db.learners.find(
        {"national_id_hash": {"$in": list(by_hash)}}, projection={"national_id_hash": 1})}
    found = {}
    # two reads rather than one with $or, which the embedded store answers by a scan
    enrollments = {doc["_id"]: doc for query in (
        {"learner_id": {"$in": list(learners)}, "course_id": course_id},
        {"_id": {"$in": list(by_id)}, "course_id": course_id})
        for doc in db.enrollments.find(query, projection=scope)}
    for enrollment in enrollments.values():
        if not caller.may_see(enrollment.get("province_code"), enrollment.get("commune_code"),
                              enrollment.get("learner_subject")):
            continue
        rows = by_id.get(enrollment["_id"], []) + by_hash.get(
            learners.get(enrollment["learner_id"]), [])
        for row in rows:
            found[row] = enrollment["_id"]
    for rows, field in [(rows, "national_id") for rows in by_hash.values()] + \
            [(rows, "enrollment_id") for rows in by_id.values()]:
        problems.extend(_problem(row, field, NOT_FOUND) for row in rows if row not in found)
    return {"items": [{"row": row, "enrollment_id": found[row]} for row in sorted(found)],
            "problems": sorted(problems, key=lambda p: p["row"])}


def requested(parsed: bulk_csv.ParsedFile, national_id_hash) -> tuple[dict, dict, list]:
    """The rows asked for, by the keyed hash of their national ID and by enrollment id
    ({key: [row, ...]}), and the problems of the rows that name neither properly."""
    by_hash, by_id, problems = {}, {}, []
    for row, cells in parsed.rows:
        national_id = cells.get("national_id", "").replace(" ", "")
        if national_id:
            national_id = "0" + national_id if re.fullmatch(r"[0-9]{11}", national_id) \
                else national_id
            if not re.fullmatch(r"[0-9]{12}", national_id):
                problems.append(_problem(row, "national_id", "must be exactly 12 digits"))
                continue
            by_hash.setdefault(national_id_hash(national_id), []).append(row)
        elif cells.get("enrollment_id"):
            by_id.setdefault(cells["enrollment_id"], []).append(row)
        else:
            problems.append(_problem(row, "national_id", "Missing data for required field."))
    return by_hash, by_id, problems


def _problem(row: int, field: str, message: str) -> dict:
    return {"row": row, "field": field, "message_en": message,
            "message_vi": bulk_csv.message_vi(field, message)}
