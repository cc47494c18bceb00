"""SpeedSMS.vn over its REST API.

What this relies on (SpeedSMS's published API and its official client libraries; see
docs/sms-gateway.md for what could not be confirmed):
- send: POST {base}/index.php/sms/send, HTTP Basic authentication with the access token as
  user name and "x" as password, JSON {to: [84...], content, sms_type, sender}; the answer
  is {"status": "success", "code": "00", "data": {"tranId": ...}} or
  {"status": "error", "code": "<code>", "message": ...}.
- delivery report and incoming SMS: POSTed as JSON to the webhook set in the account,
  {"type": "report", "tranId", "phone", "status"} and {"type": "incoming", "phone", "content"}.
- there is no idempotency key and no status query we could confirm: an accepted message
  without a report is reconciled as `unknown`.
"""
import logging

import requests

from hocvu.privacy import mask_phone
from services.notifications.providers.base import (
    ACCEPTED, DELIVERED, REJECTED, RETRY, UNDELIVERED, BadReport, Report, SendResult,
    SmsRequest, http_session, international_digits, retry_after_seconds, transient_http)

log = logging.getLogger(__name__)

SUCCESS = "00"
REJECTING = {"101": "invalid parameters", "105": "invalid phone number",
             "110": "content encoding not supported"}
ACCOUNT = {"007": "IP locked", "008": "account locked", "009": "account may not use the API",
           "113": "sender (brandname) not registered", "300": "balance too low"}
SEND_PATH = "/index.php/sms/send"


class SpeedSmsProvider:
    name = "speedsms"
    can_query_status = False

    def __init__(self, settings):
        self.base_url = settings.speedsms_url.rstrip("/")
        self.auth = (settings.speedsms_access_token, "x")
        self.sms_type = settings.speedsms_sms_type
        self.timeout = settings.gateway_timeout
        self.session = http_session(settings.send_concurrency)

    def send(self, request: SmsRequest) -> SendResult:
        body = {"to": [international_digits(request.to)], "content": request.text,
                "sms_type": self.sms_type, "sender": request.brandname}
        try:
            response = self.session.post(self.base_url + SEND_PATH, json=body, auth=self.auth,
                                         timeout=self.timeout)
        except requests.RequestException as exc:
            return SendResult(RETRY, error=f"SpeedSMS unreachable: {type(exc).__name__}")
        if transient_http(response.status_code):
            return SendResult(RETRY, error=f"SpeedSMS HTTP {response.status_code}",
                              retry_after=retry_after_seconds(response.headers.get("Retry-After")))
        if response.status_code in (401, 403):
            return SendResult(RETRY, error=f"SpeedSMS HTTP {response.status_code} access token refused")
        try:
            answer = response.json()
            code = str(answer.get("code", ""))
        except (ValueError, AttributeError):
            return SendResult(RETRY, error=f"SpeedSMS HTTP {response.status_code}, not JSON")
        if answer.get("status") == "success" and code == SUCCESS:
            return SendResult(ACCEPTED, provider_message_id=str(answer["data"]["tranId"]))
        if code in REJECTING:
            log.error("SpeedSMS refused message %s to %s: %s %s", request.request_id,
                      mask_phone(request.to), code, REJECTING[code])
            return SendResult(REJECTED, error=f"SpeedSMS {code} {REJECTING[code]}")
        reason = ACCOUNT.get(code, answer.get("message") or "unknown code")
        return SendResult(RETRY, error=f"SpeedSMS {code} {reason}"[:200])

    @staticmethod
    def parse_report(body: dict) -> Report:
        if not isinstance(body, dict) or body.get("type") != "report" or not body.get("tranId"):
            raise BadReport("a SpeedSMS report has type 'report' and a tranId")
        status = body.get("status")
        delivered = str(status) == "0"
        return Report(DELIVERED if delivered else UNDELIVERED,
                      provider_message_id=str(body["tranId"]), detail=f"status={status}")

    @staticmethod
    def parse_incoming(body: dict) -> tuple[str, str]:
        if (not isinstance(body, dict) or body.get("type") != "incoming"
                or not isinstance(body.get("phone"), str)
                or not isinstance(body.get("content"), str)):
            raise BadReport("an incoming SpeedSMS message has type 'incoming', phone and content")
        return body["phone"], body["content"]
