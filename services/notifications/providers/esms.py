"""eSMS.vn (ViHAT) brandname SMS over its JSON API.

What this relies on (developers.esms.vn, read November 2026; see docs/sms-gateway.md):
- send: POST {base}/MainService.svc/json/SendMultipleMessage_V4_post_json/ with ApiKey,
  SecretKey, Phone, Content, Brandname, SmsType (2: customer care), IsUnicode (0/1),
  RequestId (their duplicate guard), CallbackUrl, Sandbox; the answer carries CodeResult
  ("100" = taken, not yet delivered) and SMSID.
- delivery report: an HTTP GET to CallbackUrl with SMSID, RequestId, SendStatus
  (5 = finished), SendSuccess, SendFailed, phonenumber, TypeId in the query string.
- status query: GET {base}/MainService.svc/json/GetSendStatus?RefId=<SMSID>&ApiKey&SecretKey
  (messages of the last 7 days).
"""
import logging

import requests

from hocvu.privacy import mask_phone
from services.notifications.providers.base import (
    ACCEPTED, DELIVERED, PENDING, REJECTED, RETRY, UNDELIVERED, BadReport, Report,
    SendResult, SmsRequest, http_session, national_number, retry_after_seconds, transient_http)

log = logging.getLogger(__name__)

SUCCESS = "100"
DUPLICATE_REQUEST_ID = "124"
# The message itself can never go: a blocked or malformed number, a type or template the
# account does not have for it.
REJECTING = {"99": "number blocked", "108": "number malformed", "118": "message type unsupported",
             "146": "customer-care template not registered"}
# The account, not the message: wrong keys, no price list, no balance, brandname not
# registered, IP not whitelisted. An operator can fix these; meanwhile another provider can
# carry the message, so they are retried (and count towards failover).
ACCOUNT = {"101": "wrong ApiKey/SecretKey", "102": "no price list", "103": "balance too low",
           "104": "brandname not registered", "140": "IP not whitelisted"}
FINISHED = 5
SEND_PATH = "/MainService.svc/json/SendMultipleMessage_V4_post_json/"
STATUS_PATH = "/MainService.svc/json/GetSendStatus"


class EsmsProvider:
    name = "esms"
    can_query_status = True

    def __init__(self, settings):
        self.base_url = settings.esms_url.rstrip("/")
        self.api_key = settings.esms_api_key
        self.secret_key = settings.esms_secret_key
        self.sms_type = str(settings.esms_sms_type)
        self.sandbox = "1" if settings.esms_sandbox else "0"
        self.callback_url = settings.esms_callback_url or None
        self.timeout = settings.gateway_timeout
        self.session = http_session(settings.send_concurrency)

    def send(self, request: SmsRequest) -> SendResult:
        body = {"ApiKey": self.api_key, "SecretKey": self.secret_key,
                "Phone": national_number(request.to), "Content": request.text,
                "Brandname": request.brandname, "SmsType": self.sms_type,
                "IsUnicode": "1" if request.encoding == "UCS2" else "0",
                "Sandbox": self.sandbox, "RequestId": request.request_id}
        if self.callback_url:
            body["CallbackUrl"] = self.callback_url
        try:
            response = self.session.post(self.base_url + SEND_PATH, json=body,
                                         timeout=self.timeout)
        except requests.RequestException as exc:
            return SendResult(RETRY, error=f"eSMS unreachable: {type(exc).__name__}")
        if transient_http(response.status_code):
            return SendResult(RETRY, error=f"eSMS HTTP {response.status_code}",
                              retry_after=retry_after_seconds(response.headers.get("Retry-After")))
        try:
            answer = response.json()
            code = str(answer.get("CodeResult", ""))
        except (ValueError, AttributeError):
            return SendResult(RETRY, error=f"eSMS HTTP {response.status_code}, not JSON")
        if code == SUCCESS:
            return SendResult(ACCEPTED, provider_message_id=answer.get("SMSID"))
        if code == DUPLICATE_REQUEST_ID:
            # an earlier attempt with this RequestId was taken (we crashed or timed out
            # before reading the answer); its report names our RequestId
            return SendResult(ACCEPTED)
        if code in REJECTING:
            log.error("eSMS refused message %s to %s: %s %s", request.request_id,
                      mask_phone(request.to), code, REJECTING[code])
            return SendResult(REJECTED, error=f"eSMS {code} {REJECTING[code]}")
        reason = ACCOUNT.get(code, answer.get("ErrorMessage") or "unknown code")
        return SendResult(RETRY, error=f"eSMS {code} {reason}"[:200])

    def query_status(self, provider_message_id: str) -> str:
        """DELIVERED, UNDELIVERED or PENDING; raises requests.RequestException if unreachable."""
        response = self.session.get(self.base_url + STATUS_PATH, timeout=self.timeout, params={
            "RefId": provider_message_id, "ApiKey": self.api_key, "SecretKey": self.secret_key})
        response.raise_for_status()
        answer = response.json()
        if str(answer.get("CodeResponse", answer.get("CodeResult"))) != SUCCESS:
            return PENDING
        return _status(answer)

    @staticmethod
    def parse_report(query: dict) -> Report:
        if not query.get("SMSID") or not str(query.get("SendStatus", "")).isdigit():
            raise BadReport("an eSMS report needs SMSID and SendStatus")
        return Report(_status(query), provider_message_id=query["SMSID"],
                      request_id=query.get("RequestId") or None,
                      detail=f"SendStatus={query.get('SendStatus')} "
                             f"SendSuccess={query.get('SendSuccess')} "
                             f"SendFailed={query.get('SendFailed')}")


def _status(fields: dict) -> str:
    def number(name):
        try:
            return int(fields.get(name) or 0)
        except (TypeError, ValueError):
            return 0

    if number("SendStatus") == 4:  # refused by eSMS's review
        return UNDELIVERED
    if number("SendStatus") != FINISHED:
        return PENDING
    if number("SendSuccess") > 0:
        return DELIVERED
    return UNDELIVERED if number("SendFailed") > 0 else PENDING
