"""The project's gateway simulator in its own API (docs/sms-gateway.md, mode `simulator`)."""
import logging

import requests

from hocvu.privacy import mask_phone
from services.notifications.providers.base import (
    ACCEPTED, DELIVERED, REJECTED, RETRY, UNDELIVERED, BadReport, Report, SendResult,
    SmsRequest, http_session, international_digits, retry_after_seconds, transient_http)

log = logging.getLogger(__name__)


class SimulatorProvider:
    name = "simulator"
    can_query_status = False

    def __init__(self, settings):
        self.base_url = settings.gateway_url.rstrip("/")
        self.callback_url = settings.callback_url or None
        self.timeout = settings.gateway_timeout
        self.session = http_session(settings.send_concurrency)

    def send(self, request: SmsRequest) -> SendResult:
        body = {"request_id": request.request_id, "to": international_digits(request.to),
                "brandname": request.brandname, "text": request.text,
                "encoding": request.encoding}
        if self.callback_url:
            body["callback_url"] = self.callback_url
        try:
            response = self.session.post(f"{self.base_url}/v1/messages", json=body,
                                         timeout=self.timeout)
        except requests.RequestException as exc:
            return SendResult(RETRY, error=f"gateway unreachable: {type(exc).__name__}")
        return self._result(response, request)

    @staticmethod
    def _result(response, request: SmsRequest) -> SendResult:
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        status = response.status_code
        if status in (200, 201, 202):
            return SendResult(ACCEPTED, provider_message_id=answer.get("message_id"))
        if status == 409 and answer.get("message_id"):
            # we sent this request id before (a retry after a crash): it is already accepted
            return SendResult(ACCEPTED, provider_message_id=answer["message_id"])
        error = f"HTTP {status} {answer.get('error', '')}".strip()
        if transient_http(status):
            return SendResult(RETRY, error=error,
                              retry_after=retry_after_seconds(response.headers.get("Retry-After")))
        log.error("gateway rejected message %s to %s: %s %s", request.request_id,
                  mask_phone(request.to), error, answer.get("fields", ""))
        return SendResult(REJECTED, error=error)

    @staticmethod
    def parse_report(body: dict) -> Report:
        if not isinstance(body, dict) or not body.get("request_id"):
            raise BadReport("not a simulator delivery report")
        status = DELIVERED if body.get("status") == "delivered" else UNDELIVERED
        return Report(status, provider_message_id=body.get("message_id"),
                      request_id=body["request_id"], detail=body.get("status"))
