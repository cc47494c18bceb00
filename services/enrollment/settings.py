"""enrollment's configuration keys (docs/configuration.md), checked when the service starts."""
from hocvu.sealing import Sealer
from hocvu.settings import SettingsSchema, duration, number, parsed, secret, whole


class EnrollmentSettings(SettingsSchema):
    # never changed in a running deployment: returning learners would not be recognised
    national_id_hash_key = secret("NATIONAL_ID_HASH_KEY")
    # the same secret as identity's: the sign-in subject of a learner's phone number
    learner_subject_key = secret("LEARNER_SUBJECT_KEY")
    # notifications' public sealing key (base64), as the Sealer that seals for it
    sealer = parsed("NOTIFICATIONS_SEALING_PUBLIC_KEY", Sealer)

    # bulk imports (bulk.py); a chunk, a row count or a pool of none would do nothing
    bulk_max_bytes = whole("BULK_MAX_BYTES", 20 * 1024 * 1024)
    bulk_max_rows = whole("BULK_MAX_ROWS", 100_000)
    bulk_chunk_rows = whole("BULK_CHUNK_ROWS", 250)
    bulk_concurrency = whole("BULK_CONCURRENCY", 4)
    bulk_save_every_rows = whole("BULK_SAVE_EVERY_ROWS", 25)
    bulk_max_attempts = whole("BULK_MAX_ATTEMPTS", 5)
    # a lease of no time would let every process take every chunk; a poll of no time would
    # ask the store for chunks without pause
    bulk_lease = duration("BULK_LEASE_SECONDS", 60, minimum=0.1)
    bulk_poll_seconds = number("BULK_POLL_SECONDS", 2, minimum=0.1)
    # a job must outlive its own run: the hourly purge deletes what is older
    bulk_retention = duration("BULK_RETENTION_DAYS", 30, unit="days", minimum=1)
