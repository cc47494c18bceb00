"""A stand-in for a Vietnamese SMS provider's HTTP API, for development and tests.

It accepts messages, dedupes on the caller's request id, posts delivery reports to a
callback URL and can be told to fail or rate-limit. See docs/sms-gateway.md.
"""
