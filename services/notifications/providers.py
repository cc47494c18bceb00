"""SMS providers behind one interface: send(request) -> SendResult.

A provider answers "accepted" (not yet "delivered": a delivery report comes later to our
callback), "retry" (overloaded, rate-limited, unreachable) or "rejected" (the request can
never succeed). The request id is our message id, so a resend after a crash is recognised
by the provider as a duplicate instead of reaching the learner twice.

SMS_PROVIDER selects the adapter; only `simulator`, the HTTP API of the project's gateway
simulator (docs/sms-gateway.md), exists so far. A production provider (eSMS, SpeedSMS,
Viettel, VNPT...) is a new class with the same `send`, registered in PROVIDERS.
"""
import logging
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter

from hocvu.privacy import mask_phone

log = logging.getLogger(__name__)

ACCEPTED, RETRY, REJECTED = "accepted", "retry", "rejected"


@dataclass(frozen=True)
class SmsRequest:
    request_id: str
    to: str          # E.164, +84...
    text: str
    encoding: str
    brandname: str


@dataclass(frozen=True)
class SendResult:
    outcome: str
    provider_message_id: str | None = None
    error: str | None = None
    retry_after: float | None = None


class SimulatorProvider:
    name = "simulator"

    def __init__(self, config: dict):
        self.base_url = config["SMS_GATEWAY_URL"].rstrip("/")
        self.callback_url = config.get("SMS_CALLBACK_URL") or None
        self.timeout = float(config.get("SMS_GATEWAY_TIMEOUT_SECONDS", 5))
        self.session = requests.Session()
        pool = int(config.get("SMS_SEND_CONCURRENCY", 10))
        self.session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=pool))
        self.session.mount("https://", HTTPAdapter(pool_connections=1, pool_maxsize=pool))

    def send(self, request: SmsRequest) -> SendResult:
        body = {"request_id": request.request_id, "to": request.to.lstrip("+"),
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
        if status == 429 or status >= 500:
            retry_after = response.headers.get("Retry-After")
            return SendResult(RETRY, error=error,
                              retry_after=float(retry_after) if retry_after else None)
        log.error("gateway rejected message %s to %s: %s %s", request.request_id,
                  mask_phone(request.to), error, answer.get("fields", ""))
        return SendResult(REJECTED, error=error)


PROVIDERS = {SimulatorProvider.name: SimulatorProvider}


def provider_from_config(config: dict):
    name = config.get("SMS_PROVIDER", "simulator")
    try:
        return PROVIDERS[name](config)
    except KeyError:
        raise ValueError(f"unknown SMS_PROVIDER {name!r}; known: {sorted(PROVIDERS)}") from None
