"""Command line: run the simulator as its own HTTP server until SIGTERM or SIGINT."""
import argparse
import logging
import math
import os
import signal
import sys
import threading

from werkzeug.serving import WSGIRequestHandler, make_server

from .app import Settings, create_app

log = logging.getLogger("sms_simulator")


class _QuietHandler(WSGIRequestHandler):
    # werkzeug's access log prints the full URL, query string and all, which can hold a
    # phone number; the application writes its own masked line instead.
    def log_request(self, code="-", size="-"):
        pass


def _number(kind, low, high=None, *, above_low=False):
    """An argparse type accepting `kind` values from `low` (or above it) to `high`."""

    def convert(text: str):
        value = kind(text)
        too_low = value <= low if above_low else value < low
        if too_low or (high is not None and value > high) or not math.isfinite(value):
            bound = f"> {low}" if above_low else f">= {low}"
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {bound}" + (f" and <= {high}" if high is not None else "")
            )
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its error message
    return convert


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sms_simulator",
        description="SMS gateway simulator speaking a provider-style HTTP API "
                    "(see docs/sms-gateway.md).",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    add("--port", type=_number(int, 0, 65535), default=8025,
        help="port to listen on; 0 picks a free one (default %(default)s)")
    add("--delivery-delay", type=_number(float, 0), default=0.2, metavar="SECONDS",
        help="time from acceptance to delivery report (default %(default)s)")
    add("--callback-attempts", type=_number(int, 1), default=5, metavar="N",
        help="tries to post each delivery report (default %(default)s)")
    add("--callback-backoff", type=_number(float, 0), default=0.5, metavar="SECONDS",
        help="wait before the first retry, doubling after each (default %(default)s)")
    add("--callback-timeout", type=_number(float, 0, above_low=True), default=2.0,
        metavar="SECONDS", help="timeout of one report POST (default %(default)s)")
    add("--callback-workers", type=_number(int, 1), default=4, metavar="N",
        help="threads posting delivery reports (default %(default)s)")
    add("--fail-rate", type=_number(float, 0, 1), default=0.0, metavar="RATE",
        help="share of sends answered 503, 0 to 1 (default %(default)s)")
    add("--rate-limit-per-minute", type=_number(int, 0), default=None, metavar="N",
        help="accepted messages per rolling minute before 429 (default: no limit)")
    add("--retry-after-format", choices=["seconds", "http-date"], default="seconds",
        help="how a 429 writes Retry-After (default %(default)s)")
    add("--mode", choices=["simulator", "esms", "speedsms"], default="simulator",
        help="which provider's API to speak (default %(default)s; docs/sms-gateway.md)")
    add("--api-key", default="test-api-key", help="esms mode: the ApiKey accepted")
    add("--secret-key", default="test-secret-key", help="esms mode: the SecretKey accepted")
    add("--access-token", default="test-access-token",
        help="speedsms mode: the access token accepted (Basic-auth user name)")
    add("--webhook-url", default=None,
        help="speedsms mode: where delivery reports go (the account's webhook)")
    add("--callback-secret", metavar="SECRET", default=os.environ.get("SMS_CALLBACK_SECRET"),
        help="sign every delivery report with this shared secret (HMAC-SHA256); default: "
             "the SMS_CALLBACK_SECRET environment variable, else unsigned")
    add("--record", metavar="FILE", help="append every accepted message to FILE as a JSON line")
    add("--seed", type=int, default=None, help="seed for --fail-rate, for repeatable runs")
    add("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="(default %(default)s)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings(
        delivery_delay=args.delivery_delay,
        callback_attempts=args.callback_attempts,
        callback_backoff=args.callback_backoff,
        callback_timeout=args.callback_timeout,
        callback_workers=args.callback_workers,
        fail_rate=args.fail_rate,
        rate_limit_per_minute=args.rate_limit_per_minute,
        record_path=args.record,
        seed=args.seed,
        retry_after_format=args.retry_after_format,
        mode=args.mode,
        api_key=args.api_key,
        secret_key=args.secret_key,
        access_token=args.access_token,
        webhook_url=args.webhook_url,
        callback_secret=args.callback_secret.encode() if args.callback_secret else None,
    )
    app = create_app(settings)
    try:
        server = make_server(args.host, args.port, app, threaded=True,
                             request_handler=_QuietHandler)
    except OSError as exc:
        app.close()
        log.error("cannot listen on %s:%s: %s", args.host, args.port, exc)
        return 1

    stop = threading.Event()

    def request_stop(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    # serve_forever runs in a thread because shutdown() blocks until it returns, which
    # a signal handler running on the serving thread would wait for forever.
    serving = threading.Thread(target=server.serve_forever, name="sms-http", daemon=True)
    serving.start()
    log.info("SMS simulator listening on http://%s:%d (mode %s, delivery delay %ss, reports %s)",
             args.host, server.port, args.mode, args.delivery_delay,
             "signed" if args.callback_secret else "unsigned")
    stop.wait()
    log.info("stopping")
    server.shutdown()
    server.server_close()
    app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
