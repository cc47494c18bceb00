"""Bulk enrollment: a facilitator's list of learners, enrolled as a job that survives restarts.

The upload (POST /imports) reads the CSV (bulk_csv), stores its rows in chunk documents
(`import_chunks`, _id `<job>:<chunk number>`, CHUNK_ROWS rows each) and the job (`imports`),
and answers 202 at once. A background loop in every enrollment process claims pending
chunks under a lease (hocvu.leases: instances share the work, a crashed one's lease runs
out) and takes each row through exactly what POST /enrollments does: the same schema, the
same caller check, the same course rule and the same writes (`repository.enroll_learner`,
which the service hands this module), so a valid row gets its lesson plan and confirmation
SMS like anyone else, and an invalid one changes nothing.

Exactly once per row, across crashes:
- a row's outcome is kept in its chunk (`outcomes`, in row order), saved every few rows; after
  a crash the rows without a saved outcome run again;
- running a row again cannot enroll anyone twice (the unique learner and course); and each
  row enrolls with its own correlation id `imp-<job>-<row>`, kept on the enrollment, so a row
  whose enrollment was written before the crash is recognised as this job's own: "enrolled",
  not "already enrolled";
- a finished chunk's counts are added to its job once: the job's update is conditioned on the
  chunk not being in its `counted_chunks` yet (one atomic single-document write).
The job's progress is those counters; nothing counts rows in the store.

A job is the business of its creator and of staff covering a commune of its rows (a province
admin: its province). The file itself is not kept. Its rows are personal data (names, phone
numbers, national IDs in clear): a chunk keeps them encrypted (libsodium secret box, with a
key derived from NATIONAL_ID_HASH_KEY, so only enrollment reads them) and drops them once its
rows are done; what stays is row numbers and outcomes, deleted with the job after
BULK_RETENTION_DAYS.
"""
import base64
import hashlib
import hmac
import json
import logging
import uuid

from eventlet import GreenPool
from marshmallow import ValidationError
from nacl.secret import SecretBox
from nameko.extensions import DependencyProvider
from pymongo import ASCENDING
from pymongo.errors import PyMongoError

from hocvu.auth import Principal
from hocvu.background import WakeableLoop
from hocvu.clock import utcnow
from hocvu.http import ApiError, NotFound, ValidationFailed, flatten_errors
from hocvu.leases import NEVER, claim_batch
from hocvu.reference import province_of
from hocvu.retention import RetentionRule
from hocvu.settings import settings_of
from hocvu.store import dependency, find_by_ids
from services.enrollment import bulk_csv, domain
from services.enrollment.schemas import EnrollmentIn

log = logging.getLogger(__name__)

JOBS, CHUNKS = "imports", "import_chunks"
PENDING, DONE = "pending", "done"
# outcomes of a row
ENROLLED, ALREADY, INVALID = "enrolled", "already_enrolled", "invalid"
# a job's stored state; "running" and "done" are read from its counters
UPLOADING, ACCEPTED = "uploading", "accepted"
_ORDER = [("created_at", ASCENDING), ("_id", ASCENDING)]
GAVE_UP = "could not be processed after {} attempts; upload this row again"
_enrollment_in = EnrollmentIn()


class PayloadTooLarge(ApiError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


def prepare_indexes(db) -> None:
    db[CHUNKS].create_index([("status", ASCENDING), ("created_at", ASCENDING)])
    db[JOBS].create_index("created_at")


def read_upload(request, max_bytes: int) -> bytes:
    """The request body, refused with 413 past `max_bytes` (whether or not it said its length)."""
    too_large = PayloadTooLarge(
        f"the file is larger than {max_bytes // (1024 * 1024)} MiB; split it",
        {"_body": [f"at most {max_bytes} bytes"]})
    if request.content_length and request.content_length > max_bytes:
        raise too_large
    data = request.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise too_large
    if not data.strip():
        raise ValidationFailed("the body must be a CSV file with a header line",
                               {"_body": ["empty body"]})
    return data


def parse_upload(data: bytes, max_rows: int, required=bulk_csv.REQUIRED_COLUMNS):
    try:
        return bulk_csv.parse(data, max_rows, required)
    except bulk_csv.CsvProblem as exc:
        raise ValidationFailed(exc.message_en, exc.fields or {"_file": [exc.message_en]},
                               message_vi=exc.message_vi) from None


class RowBox:
    """A chunk's rows encrypted at rest, with a key only enrollment can derive."""

    def __init__(self, national_id_key: bytes):
        self._box = SecretBox(hmac.new(national_id_key, b"hocvu bulk import rows",
                                       hashlib.sha256).digest())

    def seal(self, cells: list[dict]) -> str:
        plain = json.dumps(cells, ensure_ascii=False).encode("utf-8")
        return base64.b64encode(self._box.encrypt(plain)).decode("ascii")

    def open(self, sealed: str) -> list[dict]:
        return json.loads(self._box.decrypt(base64.b64decode(sealed)))


def caller_document(caller: Principal) -> dict:
    return {"subject": caller.subject, "role": caller.role, "province": caller.province,
            "communes": sorted(caller.communes), "issuer": caller.issuer}


def caller_from(document: dict) -> Principal:
    return Principal(subject=document["subject"], role=document["role"],
                     province=document.get("province"),
                     communes=frozenset(document.get("communes") or ()),
                     issuer=document.get("issuer", ""))


def may_see(caller: Principal, job: dict) -> bool:
    return caller.subject == job["created_by"] or any(
        caller.covers(province_of(commune), commune) for commune in job["commune_codes"])


def job_view(job: dict) -> dict:
    """A job as its API shows it: state, counts, progress (from the per-chunk counters)."""
    counts = job["counts"]
    processed = counts["valid"] + counts["invalid"]
    if job["status"] == UPLOADING:
        status = "interrupted"   # the upload never finished storing its rows
    elif len(job["counted_chunks"]) >= job["chunk_count"]:
        status = "done"
    elif job["counted_chunks"]:
        status = "running"
    else:
        status = "queued"
    return {"id": job["_id"], "status": status, "course_id": job["course_id"],
            "rows": job["rows"], "processed": processed,
            "progress": round(processed / job["rows"], 4) if job["rows"] else 1.0,
            "counts": counts, "file": job["file"], "created_at": job["created_at"],
            "finished_at": job.get("finished_at")}


class RowEnroller:
    """One row through POST /enrollments' rules; returns its outcome. The only place that
    calls enrollment's write path (`enroll`: repository.enroll_learner), so a change to it
    is adapted here."""

    def __init__(self, store, keys, enroll):
        self.store = store
        self.keys = keys
        self.enroll = enroll

    def outcome(self, job: dict, caller: Principal, row: int, cells: dict) -> dict:
        learner_in = bulk_csv.learner_fields(cells, job.get("province_code"),
                                             job.get("commune_code"))
        try:
            body = _enrollment_in.load({"course_id": job["course_id"], "learner": learner_in})
        except ValidationError as exc:
            return _invalid(flatten_errors(exc.messages))
        learner = body["learner"]
        correlation_id = f"imp-{job['_id']}-{row}"
        try:
            enrollment = self.enroll(self.store, self.keys, caller, body["course_id"], learner,
                                     correlation_id)
        except domain.AlreadyEnrolled as exc:
            existing = exc.extra.get("enrollment_id")
            if existing and self.store.db.enrollments.find_one(
                    {"_id": existing, "correlation_id": correlation_id}, projection={"_id": 1}):
                return {"o": ENROLLED, "id": existing}   # this row, before a crash
            return {"o": ALREADY, "id": existing,
                    "e": [["national_id", "already enrolled in this course"]]}
        except domain.Refused as exc:
            return _invalid(exc.fields or {"_schema": [exc.message]})
        return {"o": ENROLLED, "id": enrollment["_id"]}


def _invalid(fields: dict) -> dict:
    problems = [[name.removeprefix("learner."), str(message)]
                for name, messages in fields.items() for message in messages]
    return {"o": INVALID, "e": problems}


def tally(outcomes: list[dict]) -> dict:
    counts = {ENROLLED: 0, ALREADY: 0, INVALID: 0}
    for outcome in outcomes:
        counts[outcome["o"]] += 1
    return {"valid": counts[ENROLLED] + counts[ALREADY], "enrolled": counts[ENROLLED],
            "already_enrolled": counts[ALREADY], "invalid": counts[INVALID]}


class ImportLoop(WakeableLoop):
    name = "enrollment.bulk_imports"

    def __init__(self, db, enroller: RowEnroller, box: RowBox, settings):
        """`settings`: the service's, settings.EnrollmentSettings."""
        super().__init__()
        self.box = box
        self.jobs, self.chunks = db[JOBS], db[CHUNKS]
        self.enroller = enroller
        self.concurrency = settings.bulk_concurrency
        self.save_every = settings.bulk_save_every_rows
        self.lease = settings.bulk_lease
        self.max_attempts = settings.bulk_max_attempts
        self.poll_seconds = settings.bulk_poll_seconds
        self.pool = GreenPool(self.concurrency)

    def run_once(self) -> bool:
        batch = claim_batch(self.chunks, {"status": PENDING}, _ORDER, self.concurrency,
                            self.lease)
        for _ in self.pool.imap(self.process, batch):
            pass
        return len(batch) == self.concurrency

    def process(self, chunk: dict) -> None:
        job = self.jobs.find_one({"_id": chunk["job_id"]},
                                 projection={"counted_chunks": 0})
        if job is None:
            return   # a job whose upload failed before it was recorded; its lease keeps it
        caller = caller_from(job["caller"])
        outcomes = list(chunk.get("outcomes") or [])
        if len(outcomes) < len(chunk["rows"]):
            attempts = chunk.get("attempts", 0) + 1
            self.chunks.update_one({"_id": chunk["_id"]}, {"$set": {"attempts": attempts}})
            try:
                rows = list(zip(chunk["rows"], self.box.open(chunk["sealed_rows"])))
                for row, cells in rows[len(outcomes):]:
                    outcomes.append(self.enroller.outcome(job, caller, row, cells))
                    if len(outcomes) % self.save_every == 0 and len(outcomes) < len(rows):
                        self._save(chunk, outcomes)
            except PyMongoError:
                raise   # the store is away: the chunk waits for it, however long
            except Exception as exc:
                # the same failure every time (a bug, rows sealed under another key): after
                # a few tries the chunk's remaining rows are reported, so the job can finish
                if attempts < self.max_attempts:
                    raise
                log.error("import %s chunk %s: %s rows given up after %s attempts (%s)",
                          chunk["job_id"], chunk["chunk_no"],
                          len(chunk["rows"]) - len(outcomes), attempts, type(exc).__name__)
                outcomes += [{"o": INVALID, "e": [["_row", GAVE_UP.format(attempts)]]}
                             for _ in chunk["rows"][len(outcomes):]]
            self._save(chunk, outcomes)
        self._count(chunk, outcomes)

    def _save(self, chunk: dict, outcomes: list[dict]) -> None:
        """Keep the outcomes so far, and the lease with them (rows may be slow)."""
        self.chunks.update_one({"_id": chunk["_id"]}, {"$set": {
            "outcomes": outcomes, "lease_until": utcnow() + self.lease}})

    def _count(self, chunk: dict, outcomes: list[dict]) -> None:
        counts = tally(outcomes)
        now = utcnow()
        # once per chunk, however often this runs: the condition and the change are one write
        self.jobs.update_one(
            {"_id": chunk["job_id"], "counted_chunks": {"$ne": chunk["chunk_no"]}},
            {"$inc": {f"counts.{name}": value for name, value in counts.items()},
             "$push": {"counted_chunks": chunk["chunk_no"]}, "$set": {"updated_at": now}})
        # the chunk is done only after its counts are in: a crash in between runs it again,
        # every outcome already saved, and the condition above keeps the counts right
        # and its rows' personal data goes: the report needs only row numbers and outcomes
        self.chunks.update_one({"_id": chunk["_id"]}, {
            "$set": {"status": DONE, "lease_until": NEVER, "done_at": now},
            "$unset": {"lease_owner": "", "sealed_rows": ""}})
        job = self.jobs.find_one({"_id": chunk["job_id"]},
                                 projection={"chunk_count": 1, "counted_chunks": 1,
                                             "finished_at": 1, "counts": 1})
        if job and len(job["counted_chunks"]) >= job["chunk_count"] and not job.get("finished_at"):
            self.jobs.update_one({"_id": job["_id"], "finished_at": None},
                                 {"$set": {"finished_at": now}})
            log.info("import %s done: %s", job["_id"], job["counts"])


class BulkImports(DependencyProvider):
    """The import jobs of this service: submitting one, reading it, and the loop that works
    them, as the BULK_* settings say (settings.py). `enroll` is enrollment's write path,
    repository.enroll_learner (handed in: repository prepares this module's indexes);
    `store` and `keys` name the service's attributes holding the store and the
    dependencies.PersonalDataKeys."""

    def __init__(self, enroll, store: str = "store", keys: str = "keys"):
        self.enroll = enroll
        self.store_attr, self.keys_attr = store, keys

    def setup(self):
        self.settings = settings_of(self.container)
        self.loop = None

    def start(self):
        store = dependency(self.container, self.store_attr).store
        keys = dependency(self.container, self.keys_attr)
        self.db = store.db
        enroller = RowEnroller(store, keys, self.enroll)
        self.box = RowBox(keys.national_id_key)
        self.loop = ImportLoop(self.db, enroller, self.box, self.settings)
        # the store's hourly purge, each through one range of an index: a chunk's leads with
        # its status, so one rule per status (a `$in` of them beside the range made the
        # embedded store read every chunk of both)
        store.housekeeping.add(RetentionRule(
            self.db[JOBS], expired=lambda cutoff: {"created_at": {"$lt": cutoff}},
            keep=self.settings.bulk_retention))
        for status in (PENDING, DONE):
            store.housekeeping.add(RetentionRule(
                self.db[CHUNKS], keep=self.settings.bulk_retention,
                expired=lambda cutoff, status=status: {"status": status,
                                                       "created_at": {"$lt": cutoff}}))
        self.loop.start(self.container.spawn_managed_thread,
                        self.container.service_name)

    def stop(self):
        if self.loop:
            self.loop.stop()

    def kill(self):
        if self.loop:
            self.loop.stop(wait=False)

    def get_dependency(self, worker_ctx):
        return self

    def submit(self, caller: Principal, course: dict, data: bytes, commune_code: str | None):
        """Read and store an upload as a job; the loop is woken to start on it."""
        parsed = parse_upload(data, self.settings.bulk_max_rows)
        if not parsed.rows:
            raise ValidationFailed("the file has a header but no learners",
                                   {"_file": ["no rows"]}, message_vi="tệp không có học viên nào")
        if "commune_code" not in parsed.columns and not commune_code:
            raise ValidationFailed(
                "the file has no commune column (Mã xã / commune_code): name the commune "
                "with ?commune_code=", {"commune_code": ["required without a commune column"]},
                message_vi="tệp không có cột Mã xã: hãy ghi mã xã trong ?commune_code=")
        now = utcnow()
        job_id = uuid.uuid4().hex
        rows = parsed.rows
        chunk_rows = self.settings.bulk_chunk_rows
        # rows of communes the creator does not cover are refused: they give no one a view
        communes = sorted(code for code in _commune_like(rows, commune_code)
                          if caller.covers(province_of(code), code))
        job = {"_id": job_id, "status": UPLOADING, "course_id": course["_id"],
               "created_by": caller.subject, "caller": caller_document(caller),
               "province_code": caller.province, "commune_code": commune_code,
               "commune_codes": communes[:1000], "rows": len(rows),
               "chunk_count": -(-len(rows) // chunk_rows), "counted_chunks": [],
               "counts": {"valid": 0, "enrolled": 0, "already_enrolled": 0, "invalid": 0},
               "file": {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                        "encoding": parsed.encoding,
                        "delimiter": {"\t": "tab"}.get(parsed.delimiter, parsed.delimiter),
                        "columns": parsed.columns},
               "created_at": now, "finished_at": None}
        # the job first, so that every chunk the loop takes has its job to count into; a
        # crash before the last write leaves a job that says "interrupted" (its rows that
        # were stored are still enrolled; uploading again reports them as repeats)
        self.db[JOBS].insert_one(job)
        chunks = [{"_id": chunk_id(job_id, number), "job_id": job_id, "chunk_no": number,
                   "rows": [row for row, _ in rows[start:start + chunk_rows]],
                   "sealed_rows": self.box.seal(
                       [cells for _, cells in rows[start:start + chunk_rows]]),
                   "outcomes": [],
                   "status": PENDING, "lease_until": NEVER, "created_at": now}
                  for number, start in enumerate(range(0, len(rows), chunk_rows))]
        for start in range(0, len(chunks), 40):   # bounded messages to the store
            self.db[CHUNKS].insert_many(chunks[start:start + 40], ordered=True)
        self.db[JOBS].update_one({"_id": job_id}, {"$set": {"status": ACCEPTED}})
        job["status"] = ACCEPTED
        if self.loop:
            self.loop.wake()
        log.info("import %s: %s rows in %s chunks (%s, %s)", job_id, len(rows),
                 len(chunks), parsed.encoding, job["file"]["delimiter"])
        return job

    def job_for(self, caller: Principal, job_id: str) -> dict:
        job = self.db[JOBS].find_one({"_id": job_id})
        if job is None or not may_see(caller, job):
            raise NotFound(f"no import {job_id}")
        return job

    def report(self, job: dict) -> str:
        """Every row that was not simply enrolled, with why, in row order (CSV)."""
        problems = []
        # the job's chunks by their _ids, in order: the embedded store looks _id up by value
        # only, and a range of _id read every chunk of every import
        ids = [chunk_id(job["_id"], number) for number in range(job["chunk_count"])]
        for chunk in find_by_ids(self.db[CHUNKS], ids, {"rows": 1, "outcomes": 1}):
            for row, outcome in zip(chunk["rows"], chunk.get("outcomes") or []):
                for field_name, message in outcome.get("e", []):
                    problems.append((row, outcome["o"], field_name, message))
        return bulk_csv.report_lines(problems)


def chunk_id(job_id: str, number: int) -> str:
    return f"{job_id}:{number:05d}"


def _commune_like(rows, commune_code) -> set[str]:
    """The commune codes of the rows that look like one (5 digits): who may see the job."""
    found = {commune_code} if commune_code else set()
    for _, cells in rows:
        code = bulk_csv.learner_fields({"commune_code": cells.get("commune_code", "")},
                                       None, None).get("commune_code", "")
        if len(code) == 5 and code.isdigit():
            found.add(code)
    return found
