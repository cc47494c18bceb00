"""lessons: the course catalog, lesson plans, progress and completion.

HTTP (under /api/lessons/; who may call each route: ACCESS below)
    GET  health/live                    operations only (service port)
    GET  health/ready                   broker and store reachable? operations only
    GET  metrics                        Prometheus text; operations only
    GET  openapi.json
    GET  courses                                         the catalog
    GET  courses/<course_id>
    GET  enrollments/<enrollment_id>                     a learner's progress
    POST enrollments/<enrollment_id>/lessons/<lesson_id>/complete   {"score": 0..100}
         (the learner, online; or staff of the learner's commune, for an in-person class);
         409 in a strict-order course before the lessons ahead of it (naming the first
         missing), or once the enrollment is cancelled; below the pass mark: an attempt only
    POST sessions                        a class: {course_id, lesson_id, commune_code, site,
                                         date, enrollment_ids} -> 201 (200: already recorded)
    POST sessions/<session_id>/attendance  {enrollment_ids}: more learners present
    GET  sessions/<session_id>
         (staff covering the session's commune; presence completes the lesson, reason
         session:<id>, under the same order rule; per learner: enrollment_cancelled or
         out_of_order when it cannot)
Consumes   enrollment.learner_enrolled     -> assigns the course's lessons (in batches: one
                                              insert of the plans)
           enrollment.enrollment_cancelled -> the plan stops: nothing more completes, no
                                              course_completed follows
Publishes  course_published, lessons_assigned, lesson_completed, course_completed
State      its own database: courses, plans (each with the events it caused, until relayed),
           sessions (attendance.py), cancellations (enrollment ids)
"""
from nameko.dependency_providers import Config

from hocvu import auth
from hocvu.auth import EVERYONE_SIGNED_IN, STAFF
from hocvu.cache import TtlCache
from hocvu.clock import isoformat, utcnow
from hocvu.http import Conflict, Forbidden, NotFound, ValidationFailed, http, load_body
from hocvu.messaging import subscribe, subscribe_batch
from hocvu.events import new_event
from hocvu.outbox import with_events
from hocvu.reference import province_of
from hocvu.store import ServiceStore, insert_many_once, read_modify_write
from hocvu.operations import OPERATIONS_ACCESS, operations_routes
from services.lessons import attendance, repository
from services.lessons.domain import (CompletedOutOfOrder, Learner, LessonPlan, PlanCancelled,
                                     ScoreRequired, UnknownLesson)
from services.lessons.schemas import (AttendanceIn, CompleteLessonIn, CourseOut, ProgressOut,
                                      SessionIn, SessionOut)

courses_out = CourseOut(many=True)
course_out = CourseOut()
progress_out = ProgressOut()
complete_in = CompleteLessonIn()
session_in = SessionIn()
attendance_in = AttendanceIn()
session_out = SessionOut()
# a published course's lessons never change (catalog_seed.yaml); one read per minute will do
_courses = TtlCache(seconds=60)


class UnknownCourse(Exception):
    """learner_enrolled named a course this catalog does not have."""


class EnrollmentCancelled(Conflict):
    code = "ENROLLMENT_CANCELLED"


class LessonOutOfOrder(Conflict):
    code = "LESSON_OUT_OF_ORDER"


class LessonsService(operations_routes("lessons")):
    name = "lessons"

    ACCESS = {
        **OPERATIONS_ACCESS,
        "list_courses": auth.PUBLIC,
        "get_course": auth.PUBLIC,
        "get_progress": auth.roles(*EVERYONE_SIGNED_IN),
        "complete_lesson": auth.roles(*EVERYONE_SIGNED_IN),
        # staff covering the session's commune (403 outside it; a session out of scope 404)
        "record_session": auth.roles(*STAFF),
        "record_attendance": auth.roles(*STAFF),
        "get_session": auth.roles(*STAFF),
    }

    config = Config()
    store = ServiceStore(prepare=repository.prepare)

    @http("GET", "/api/lessons/courses", summary="the course catalog",
          answers={200: CourseOut(many=True)})
    def list_courses(self, request):
        docs = self.store.db.courses.find().sort([("group", 1), ("_id", 1)])
        return courses_out.dump([repository.course_from_doc(doc) for doc in docs])

    @http("GET", "/api/lessons/courses/<course_id>", summary="one course",
          answers={200: CourseOut, 404: "no such course"})
    def get_course(self, request, course_id):
        doc = self.store.db.courses.find_one({"_id": course_id})
        if doc is None:
            raise NotFound(f"no course {course_id}")
        return course_out.dump(repository.course_from_doc(doc))

    @http("GET", "/api/lessons/enrollments/<enrollment_id>", summary="a learner's progress",
          answers={200: ProgressOut,
                   404: "no lessons assigned to this enrollment (yet), or not yours to see"})
    def get_progress(self, request, enrollment_id):
        doc = self.store.db.plans.find_one({"_id": enrollment_id})
        plan = doc and repository.plan_from_doc(doc)
        if plan is None or not plan.visible_to(request.principal):
            raise NotFound(f"no lessons assigned to enrollment {enrollment_id} (yet)")
        return progress_out.dump(plan)

    @http("POST", "/api/lessons/enrollments/<enrollment_id>/lessons/<lesson_id>/complete",
          summary="complete a lesson (again: no change)", body=CompleteLessonIn,
          body_required=False,
          answers={200: ProgressOut,
                   400: "invalid score, or none where the course has a pass mark (a learner)",
                   404: "unknown enrollment or lesson, or not yours",
                   409: "a lesson before it is not completed (strict order; named in "
                        "blocking_lesson), or the enrollment was cancelled"})
    def complete_lesson(self, request, enrollment_id, lesson_id):
        score = load_body(request, complete_in, allow_empty=True)["score"]
        caller = request.principal

        def complete(current):
            plan = current and repository.plan_from_doc(current)
            if plan is None or not plan.visible_to(caller):
                raise NotFound(f"no lessons assigned to enrollment {enrollment_id}")
            events = _complete(plan, lesson_id, score, not caller.is_staff)
            after = repository.plan_to_doc(plan)
            if after == current:
                return plan, None  # done before: nothing changes, nothing is announced
            # an attempt below the pass mark changes the plan and announces nothing
            return plan, with_events(after, [new_event(event_type, data, plan.correlation_id)
                                             for event_type, data in events])

        # a read, then a write only if nobody changed the plan in between (another lesson
        # completed at the same moment): else it runs again on what that write left
        return progress_out.dump(read_modify_write(self.store.db.plans, enrollment_id, complete))

    @http("POST", "/api/lessons/sessions", summary="record a class and the learners present",
          body=SessionIn,
          answers={201: SessionOut, 200: SessionOut, 400: "invalid fields",
                   403: "a commune you do not cover", 404: "unknown course or lesson"})
    def record_session(self, request):
        caller = request.principal
        body = load_body(request, session_in)
        if not caller.covers(province_of(body["commune_code"]), body["commune_code"]):
            raise Forbidden("you may record classes only in the communes you work in",
                            {"commune_code": ["outside your communes"]})
        session, created = attendance.open_session(self.store.db, caller, body)
        results = attendance.record_present(self.store, caller, session, body["enrollment_ids"])
        return (201 if created else 200), session_out.dump({**session, "results": results})

    @http("POST", "/api/lessons/sessions/<session_id>/attendance",
          summary="more learners present in a class", body=AttendanceIn,
          answers={200: SessionOut, 400: "invalid fields",
                   404: "no such session (or not in your communes)"})
    def record_attendance(self, request, session_id):
        body = load_body(request, attendance_in)
        session = attendance.session_for(self.store.db, request.principal, session_id)
        results = attendance.record_present(self.store, request.principal, session,
                                            body["enrollment_ids"])
        return session_out.dump({**session, "results": results})

    @http("GET", "/api/lessons/sessions/<session_id>", summary="a class and who was present",
          answers={200: SessionOut, 404: "no such session (or not in your communes)"})
    def get_session(self, request, session_id):
        return session_out.dump(attendance.session_for(self.store.db, request.principal,
                                                       session_id))

    @subscribe_batch("enrollment", "learner_enrolled")
    def assign_lessons(self, events):
        db = self.store.db
        enrollment_ids = [event.data["enrollment_id"] for event in events]
        # a redelivery finds its plan (the enrollment's natural key); a cancellation that came
        # first leaves no lessons to assign
        planned = {doc["_id"] for doc in db.plans.find({"_id": {"$in": enrollment_ids}},
                                                       projection={"_id": 1})}
        cancelled = repository.cancelled_among(db, enrollment_ids)
        already_done, plans, planned_for = [], [], []
        for event in events:
            data = event.data
            if data["enrollment_id"] in planned:
                already_done.append(event)
                continue
            if data["enrollment_id"] in cancelled:
                continue
            plans.append(self._plan(event))
            planned_for.append(event)
        # a concurrent redelivery (or the same event twice in this batch) may insert a plan
        # first: then this one is the duplicate
        already_done += [planned_for[position]
                         for position in sorted(insert_many_once(db.plans, plans))]
        # a cancellation noted between the look above and the insertion stops the plan now
        # (the cancellation's own handler may have looked for the plan before it existed)
        repository.stop_if_cancelled(db, enrollment_ids, utcnow())
        return already_done

    def _plan(self, event) -> dict:
        """The plan learner_enrolled asks for, with the events its creation causes."""
        data = event.data
        course_doc = _courses.get(data["course_id"],
                                  lambda: self.store.db.courses.find_one({"_id": data["course_id"]}))
        if course_doc is None:
            raise UnknownCourse(data["course_id"])
        learner = Learner(learner_id=data["learner_id"], full_name=data["full_name"],
                          group=data["group"], province_code=data["province_code"],
                          commune_code=data["commune_code"], subject=data.get("learner_subject"))
        plan, events = LessonPlan.assign(
            data["enrollment_id"], repository.course_from_doc(course_doc), learner,
            event.correlation_id, utcnow())
        return with_events(repository.plan_to_doc(plan), [
            new_event(event_type, event_data, event.correlation_id)
            for event_type, event_data in events])

    @subscribe("enrollment", "enrollment_cancelled")
    def stop_plan(self, event):
        # idempotent by itself, in either order with learner_enrolled: the note first (which
        # assign_lessons checks before and after it writes a plan), then the plan, if any
        enrollment_id = event.data["enrollment_id"]
        repository.note_cancellation(self.store.db, enrollment_id, event.data["cancelled_at"])
        repository.stop_if_cancelled(self.store.db, [enrollment_id], utcnow())


def _complete(plan: LessonPlan, lesson_id: str, score: int | None,
              score_required: bool) -> list:
    """The plan's rule, as HTTP answers."""
    try:
        return plan.complete_lesson(lesson_id, score, utcnow(), score_required)
    except UnknownLesson:
        raise NotFound(f"enrollment {plan.enrollment_id} has no lesson {lesson_id}") from None
    except PlanCancelled:
        raise EnrollmentCancelled("this enrollment was cancelled: its lessons stopped",
                                  cancelled_at=isoformat(plan.cancelled_at)) from None
    except CompletedOutOfOrder as exc:
        blocking = exc.blocking
        raise LessonOutOfOrder(
            f"complete lesson {blocking.position}, \"{blocking.title}\", first: this course "
            "takes its lessons in order",
            blocking_lesson={"id": blocking.id, "title": blocking.title,
                             "position": blocking.position}) from None
    except ScoreRequired:
        raise ValidationFailed("this course has a pass mark: give the score you obtained",
                               {"score": [f"required: the pass mark is {plan.pass_mark}"]}) from None
