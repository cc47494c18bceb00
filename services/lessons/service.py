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
from hocvu.clock import utcnow
from hocvu.http import Forbidden, NotFound, http, load_body
from hocvu.messaging import subscribe, subscribe_batch
from hocvu.operations import OPERATIONS_ACCESS, operations_routes
from hocvu.reference import province_of
from hocvu.settings import Settings
from hocvu.store import ServiceStore
from services.lessons import attendance, repository
from services.lessons.schemas import (AttendanceIn, CompleteLessonIn, CourseOut, ProgressOut,
                                      SessionIn, SessionOut)
from services.lessons.settings import LessonsSettings

courses_out = CourseOut(many=True)
course_out = CourseOut()
progress_out = ProgressOut()
complete_in = CompleteLessonIn()
session_in = SessionIn()
attendance_in = AttendanceIn()
session_out = SessionOut()


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
    settings = Settings(LessonsSettings)
    store = ServiceStore(prepare=repository.prepare)

    @http("GET", "/api/lessons/courses", summary="the course catalog",
          answers={200: CourseOut(many=True)})
    def list_courses(self, request):
        return courses_out.dump(repository.catalog(self.store.db))

    @http("GET", "/api/lessons/courses/<course_id>", summary="one course",
          answers={200: CourseOut, 404: "no such course"})
    def get_course(self, request, course_id):
        course = repository.find_course(self.store.db, course_id)
        if course is None:
            raise NotFound(f"no course {course_id}")
        return course_out.dump(course)

    @http("GET", "/api/lessons/enrollments/<enrollment_id>", summary="a learner's progress",
          answers={200: ProgressOut,
                   404: "no lessons assigned to this enrollment (yet), or not yours to see"})
    def get_progress(self, request, enrollment_id):
        plan = repository.find_plan(self.store.db, enrollment_id)
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
        return progress_out.dump(repository.complete_lesson(
            self.store.db, enrollment_id, lesson_id, request.principal, score, utcnow()))

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
        return repository.assign_plans(self.store.db, events, utcnow())

    @subscribe("enrollment", "enrollment_cancelled")
    def stop_plan(self, event):
        # idempotent by itself, in either order with learner_enrolled: the note first (which
        # assign_lessons checks before and after it writes a plan), then the plan, if any
        enrollment_id = event.data["enrollment_id"]
        repository.note_cancellation(self.store.db, enrollment_id, event.data["cancelled_at"])
        repository.stop_if_cancelled(self.store.db, [enrollment_id], utcnow())
