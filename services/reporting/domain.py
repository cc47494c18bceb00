"""The reporting rules, in plain Python with no I/O.

What a consumed event leaves behind is a *fact*: the few fields a figure needs (never a
name, a phone number, a national ID or a learner's subject). Facts about one enrollment are
folded into one document with operators that do not care about order or repetition (`$set`
of the same value, `$min` of a day), so an event delivered twice, or a lesson completed
before its enrollment is known, ends in the same document. A commune's figures are then a
pure function of its enrollment documents and SMS outcomes (`commune_figures`), recomputed
whenever one of them changes, and again from scratch on a rebuild.
"""
import hashlib
from collections import defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

# a day is a day in Vietnam: a lesson at 06:30 on the 9th is the 9th, not the 8th in UTC
CAMPAIGN_ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
ELDERLY_FROM_AGE = 60
AGE_BANDS = ("under_60", "60_and_over", "unknown")
GROUPS = ("official", "student", "worker", "citizen")
# the figures summed over days (active is not: it is a state on a day)
COUNTED = ("enrolled", "lessons_completed", "courses_completed", "certificates_issued",
           "certificates_revoked", "cancellations", "sms_delivered", "sms_failed")
METRICS = ("enrolled", "active", *COUNTED[1:])


def local_day(moment: datetime) -> str:
    return moment.astimezone(CAMPAIGN_ZONE).date().isoformat()


def today() -> str:
    return datetime.now(CAMPAIGN_ZONE).date().isoformat()


def age_band(birth_year: int | None, enrolled_at: datetime) -> str:
    """Age reached in the year of enrolling; the campaign counts people of 60 and over apart.
    Only the band is kept: the birth year itself never reaches this service's store."""
    if birth_year is None:
        return "unknown"
    return "60_and_over" if enrolled_at.year - birth_year >= ELDERLY_FROM_AGE else "under_60"


def lesson_key(lesson_id: str) -> str:
    """A store field name for a lesson id (a dot or a leading $ would be read as a path)."""
    if "." in lesson_id or lesson_id.startswith("$"):
        return "h" + hashlib.sha256(lesson_id.encode()).hexdigest()[:24]
    return lesson_id


def bucket(group: str | None, band: str | None) -> str:
    return f"{group or 'unknown'}|{band or 'unknown'}"


# --- events -> facts -------------------------------------------------------------------

_PLACE = ("province_code", "commune_code")


def fact_of(event_type: str, data: dict) -> dict:
    """What reporting keeps of an event (its retained stream): ids, place, group, day."""
    pick = lambda *names: {n: data[n] for n in names if data.get(n) is not None}  # noqa: E731
    if event_type == "learner_enrolled":
        return {**pick("enrollment_id", "course_id", "group", *_PLACE),
                "age_band": age_band(data.get("birth_year"), data["enrolled_at"]),
                "day": local_day(data["enrolled_at"])}
    if event_type == "lesson_completed":
        return {**pick("enrollment_id", "lesson_id"), "day": local_day(data["completed_at"])}
    if event_type == "course_completed":
        return {**pick("enrollment_id", "course_id", "group", *_PLACE),
                "day": local_day(data["completed_at"])}
    if event_type == "certificate_issued":
        return {**pick("enrollment_id", *_PLACE), "day": local_day(data["issued_at"])}
    if event_type == "certificate_revoked":
        return {**pick("enrollment_id", "group", *_PLACE), "day": local_day(data["revoked_at"])}
    if event_type == "enrollment_cancelled":
        return {**pick("enrollment_id", "group", *_PLACE), "day": local_day(data["cancelled_at"])}
    if event_type == "sms_outcome":
        return {**pick("message_id", "template", "status", "enrollment_id", "group", *_PLACE),
                "day": local_day(data["settled_at"])}
    raise ValueError(f"reporting does not consume {event_type}")


_DAY_FIELD = {"learner_enrolled": "enrolled_on", "course_completed": "completed_on",
              "certificate_issued": "certified_on", "certificate_revoked": "revoked_on",
              "enrollment_cancelled": "cancelled_on"}


def enrollment_change(event_type: str, fact: dict) -> dict:
    """The update that folds a fact into its enrollment's document (upserted by id).

    `$min` of a day keeps the first whatever the order of arrival; the place and group are
    the same in every event of an enrollment, so setting them again changes nothing."""
    if event_type == "lesson_completed":
        return {"$min": {f"lessons.{lesson_key(fact['lesson_id'])}": fact["day"]}}
    placed = {k: fact[k] for k in ("province_code", "commune_code", "group", "course_id",
                                   "age_band") if k in fact}
    change = {"$min": {_DAY_FIELD[event_type]: fact["day"]}}
    if placed:
        change["$set"] = placed
    return change


def created_by(enrollment_id: str, change: dict) -> dict:
    """The document that upserting `change` (enrollment_change) on a new enrollment's id
    creates: what the first fact of an enrollment inserts instead (repository.apply_many)."""
    document: dict = {"_id": enrollment_id}
    for operator in ("$set", "$min"):
        for path, value in change.get(operator, {}).items():
            *parents, name = path.split(".")
            target = document
            for parent in parents:
                target = target.setdefault(parent, {})
            target[name] = value
    return document


# --- facts -> figures ------------------------------------------------------------------

def _days_from(first: str, count: int) -> list[str]:
    start = date.fromisoformat(first)
    return [(start + timedelta(days=k)).isoformat() for k in range(count)]


def commune_figures(enrollments: list[dict], sms: list[dict], active_days: int) -> dict:
    """{day: {bucket: {metric: n}}} of one commune, from its enrollment documents and SMS
    outcomes. `active` on a day counts the enrollments with a lesson completed in the
    `active_days` days up to it (days after the last event included: no event, no change)."""
    days: dict = defaultdict(lambda: defaultdict(lambda: dict.fromkeys(METRICS, 0)))
    bands = {}
    for doc in enrollments:
        key = bucket(doc.get("group"), doc.get("age_band"))
        bands[doc["_id"]] = doc.get("age_band")
        for field, metric in (("enrolled_on", "enrolled"), ("completed_on", "courses_completed"),
                              ("certified_on", "certificates_issued"),
                              ("revoked_on", "certificates_revoked"),
                              ("cancelled_on", "cancellations")):
            if doc.get(field):
                days[doc[field]][key][metric] += 1
        lesson_days = list((doc.get("lessons") or {}).values())
        for day in lesson_days:
            days[day][key]["lessons_completed"] += 1
        active = set()
        for day in lesson_days:
            active.update(_days_from(day, active_days))
        for day in active:
            days[day][key]["active"] += 1
    for outcome in sms:
        key = bucket(outcome.get("group"), bands.get(outcome.get("enrollment_id")))
        metric = "sms_delivered" if outcome["status"] == "delivered" else "sms_failed"
        days[outcome["day"]][key][metric] += 1
    return {day: {k: dict(v) for k, v in buckets.items()} for day, buckets in days.items()}


def matches(key: str, group: str | None, band: str | None) -> bool:
    bucket_group, bucket_band = key.split("|")
    return (group is None or bucket_group == group) and (band is None or bucket_band == band)


def add(total: dict, figures: dict, metrics=METRICS) -> dict:
    for metric in metrics:
        total[metric] = total.get(metric, 0) + figures.get(metric, 0)
    return total


def empty() -> dict:
    return dict.fromkeys(METRICS, 0)


def with_rate(figures: dict, target: dict) -> dict:
    """The commune's certified learners (issued less revoked) against its target: of its
    adult population when the province has set it, else of those enrolled."""
    certified = max(0, figures["certificates_issued"] - figures["certificates_revoked"])
    population = target.get("adult_population")
    base = population if population else figures["enrolled"]
    rate = round(certified / base, 4) if base else None
    goal = target["target_rate"]
    return {**figures, "certified": certified, "certification_rate": rate,
            "rate_basis": "adult_population" if population else "enrolled",
            "adult_population": population, "target_rate": goal,
            "target_met": rate is not None and rate >= goal}
