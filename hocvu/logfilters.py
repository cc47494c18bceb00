"""Logging filters the services' configs install (LOGGING in services/*/config.yaml)."""
import logging


class QuietExpectedErrors(logging.Filter):
    """A 4xx answer or a duplicate delivery is routine: nameko logs it as a warning with a
    traceback; keep one INFO line instead so real errors stand out."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "nameko.containers" and str(record.msg).startswith("(expected)"):
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True
