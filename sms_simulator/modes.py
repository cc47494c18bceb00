"""The simulator speaking a Vietnamese provider's API (`--mode esms` or `--mode speedsms`).

Each mode accepts sends in that provider's request format and authentication, answers in
its format with its result codes, and reports delivery in its callback format. The
messages are kept in the same store as in `simulator` mode, so GET /v1/messages, the
stats, the faults and the `--record` file work the same in every mode.
docs/sms-gateway.md, "Provider modes", says which parts follow the providers' public
documentation and which could not be confirmed.
"""
import base64
import binascii
import hmac
import itertools
import json
import re
import threading
import uuid

from werkzeug.routing import Rule
from werkzeug.wrappers import Response

from .faults import RateLimited
from .segments import gsm7_unsupported
from .store import DuplicateRequest
from .validation import BRANDNAME, REQUEST_ID, ValidationFailed

NATIONAL_OR_INTERNATIONAL = re.compile(r"(?:0|84)([35789][0-9]{8})")
MAX_CONTENT = 1600


def _json(payload: dict, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False), status=status, headers=headers,
                    content_type="application/json; charset=utf-8")


def _international(phone) -> str | None:
    if not isinstance(phone, str):
        return None
    found = NATIONAL_OR_INTERNATIONAL.fullmatch(phone.strip())
    return "84" + found.group(1) if found else None


def _body(request) -> dict:
    try:
        payload = json.loads(request.get_data(cache=False).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValidationFailed({"body": ["must be a UTF-8 JSON document"]}) from None
    if not isinstance(payload, dict):
        raise ValidationFailed({"body": ["must be a JSON object"]})
    return payload


class EsmsMode:
    """eSMS.vn: SendMultipleMessage_V4_post_json, GetSendStatus, callbacks as GET."""
    name = "esms"
    # CodeResult values (developers.esms.vn, "Table of error codes")
    OK, BAD_KEYS, BAD_PHONE, DUPLICATE, BAD_BRANDNAME = "100", "101", "108", "124", "104"

    def __init__(self, app, api_key: str, secret_key: str):
        self.app = app
        self.api_key = api_key
        self.secret_key = secret_key

    def rules(self) -> list[Rule]:
        return [Rule("/MainService.svc/json/SendMultipleMessage_V4_post_json/",
                     endpoint=self.send, methods=["POST"]),
                Rule("/MainService.svc/json/GetSendStatus", endpoint=self.status,
                     methods=["GET"])]

    def _keys_ok(self, api_key, secret_key) -> bool:
        return (isinstance(api_key, str) and isinstance(secret_key, str)
                and hmac.compare_digest(api_key, self.api_key)
                and hmac.compare_digest(secret_key, self.secret_key))

    def _code(self, code: str, message: str, request) -> Response:
        request.log_fields["code"] = code
        if code != self.OK:
            self.app.store.count("rejected")
        return _json({"CodeResult": code, "ErrorMessage": message})

    def send(self, request) -> Response:
        outage = self.app.outage()
        if outage:
            return outage
        payload = _body(request)
        if not self._keys_ok(payload.get("ApiKey"), payload.get("SecretKey")):
            return self._code(self.BAD_KEYS, "ApiKey or SecretKey is wrong", request)
        to = _international(payload.get("Phone"))
        if to is None:
            return self._code(self.BAD_PHONE, "Phone is not a Vietnamese mobile number", request)
        request.log_fields["to"] = self.app.mask(to)
        brandname = payload.get("Brandname")
        if not isinstance(brandname, str) or not BRANDNAME.fullmatch(brandname):
            return self._code(self.BAD_BRANDNAME, "Brandname is not registered", request)
        content = payload.get("Content")
        if not isinstance(content, str) or not 1 <= len(content) <= MAX_CONTENT:
            return self._code("118", "Content is missing or too long", request)
        unicode = str(payload.get("IsUnicode", "0")) == "1"
        if not unicode and gsm7_unsupported(content):
            return self._code("118", "Content has accents; send it with IsUnicode=1", request)
        request_id = payload.get("RequestId") or uuid.uuid4().hex
        if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
            return self._code("118", "RequestId is not usable", request)
        request.log_fields["request_id"] = request_id
        fields = {"request_id": request_id, "to": to, "brandname": brandname, "text": content,
                  "encoding": "UCS2" if unicode else "GSM7",
                  "callback_url": payload.get("CallbackUrl") or None}
        try:
            message = self.app.store.accept(fields, admit=self.app.faults.admit,
                                            report_format=self.name)
        except DuplicateRequest:
            return self._code(self.DUPLICATE, "RequestId was sent before", request)
        except RateLimited as exc:
            return self.app.rate_limited(exc)
        self.app.accepted(request, message)
        return _json({"CodeResult": self.OK, "CountRegenerate": 0,
                      "SMSID": message.message_id})

    def status(self, request) -> Response:
        if not self._keys_ok(request.args.get("ApiKey"), request.args.get("SecretKey")):
            return _json({"CodeResponse": self.BAD_KEYS})
        message = self.app.store.get(request.args.get("RefId", ""))
        if message is None:
            return _json({"CodeResponse": "105"})  # message code not found
        return _json({"CodeResponse": self.OK, "SMSID": message.message_id,
                      **self.report_fields(message)})

    @staticmethod
    def report_fields(message) -> dict:
        delivered = message.status == "delivered"
        return {"SendStatus": 5 if delivered else 2, "SendSuccess": 1 if delivered else 0,
                "SendFailed": 0, "TotalReceiver": 1, "TotalSent": 1 if delivered else 0}

    @classmethod
    def report(cls, message, delivered_at: str) -> tuple[str, dict]:
        """eSMS reports with an HTTP GET, the fields in the query string."""
        fields = {**cls.report_fields(message), "SendStatus": 5, "SendSuccess": 1,
                  "TotalSent": 1}
        return "GET", {"SMSID": message.message_id, "RequestId": message.request_id,
                       "TypeId": 2, "phonenumber": "0" + message.to[2:],
                       **{key: str(value) for key, value in fields.items()}}


class SpeedSmsMode:
    """SpeedSMS.vn: POST /index.php/sms/send with Basic auth; webhook reports as JSON."""
    name = "speedsms"

    def __init__(self, app, access_token: str, webhook_url: str | None):
        self.app = app
        self.access_token = access_token
        self.webhook_url = webhook_url
        self._tran_ids = itertools.count(100001)
        self._lock = threading.Lock()

    def rules(self) -> list[Rule]:
        return [Rule("/index.php/sms/send", endpoint=self.send, methods=["POST"])]

    def _authorised(self, request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, _ = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user, self.access_token)

    def _error(self, code: str, message: str, request) -> Response:
        request.log_fields["code"] = code
        self.app.store.count("rejected")
        return _json({"status": "error", "code": code, "message": message})

    def send(self, request) -> Response:
        outage = self.app.outage()
        if outage:
            return outage
        if not self._authorised(request):
            self.app.store.count("rejected")
            return _json({"status": "error", "code": "401", "message": "unauthorized"}, 401)
        payload = _body(request)
        recipients = payload.get("to")
        if isinstance(recipients, str):
            recipients = [recipients]
        if not isinstance(recipients, list) or len(recipients) != 1:
            return self._error("101", "give exactly one number in `to`", request)
        to = _international(recipients[0])
        if to is None:
            return self._error("105", "invalid phone number", request)
        request.log_fields["to"] = self.app.mask(to)
        content, sender = payload.get("content"), payload.get("sender")
        if not isinstance(content, str) or not 1 <= len(content) <= MAX_CONTENT:
            return self._error("101", "content is missing or too long", request)
        if not isinstance(sender, str) or not BRANDNAME.fullmatch(sender):
            return self._error("113", "sender is not registered", request)
        with self._lock:
            tran_id = next(self._tran_ids)
        fields = {"request_id": f"speedsms-{tran_id}", "to": to, "brandname": sender,
                  "text": content, "encoding": "UCS2" if gsm7_unsupported(content) else "GSM7",
                  "callback_url": self.webhook_url}
        try:
            message = self.app.store.accept(fields, admit=self.app.faults.admit,
                                            message_id=str(tran_id), report_format=self.name)
        except RateLimited as exc:
            return self.app.rate_limited(exc)
        self.app.accepted(request, message)
        return _json({"status": "success", "code": "00", "data": {
            "tranId": tran_id, "totalSMS": message.segments, "totalPrice": 0,
            "invalidPhone": []}})

    @staticmethod
    def report(message, delivered_at: str) -> tuple[str, dict]:
        return "POST", {"type": "report", "tranId": int(message.message_id),
                        "phone": message.to, "status": 0}
