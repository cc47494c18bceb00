"""The load generator: its own process, so its work never shares a CPU queue or a GIL with
the harness that analyses the run.

    python -m hocvu_tools.bench.loadgen REQUESTS.jsonl RESULTS.jsonl --base-url URL
        (--rate R | --concurrency C) [--timeout S]

REQUESTS.jsonl holds one request per line: {"method", "path", "body", "headers", "tag"}, or
"data" (text sent as it is, UTF-8: a CSV upload) instead of the JSON "body".

Open loop (--rate): request i is due at start + i / R and is sent then, whether or not the
earlier ones have answered, so a slow platform shows up as latency and not as a politely
lower offered rate. Its latency is counted from when it was due, not from when a connection
was free to send it.
Bounded concurrency (--concurrency): C clients each send the next request as soon as their
previous one answered; the launch burst, "as fast as the platform accepts them".

Every request's timestamps (Unix seconds) go to RESULTS.jsonl:
    {"i", "tag", "due", "sent", "done", "status", "id", "error"}
`id` is the created resource's id when the answer has one; status 0 means no HTTP answer.
"""
import argparse
import asyncio
import json
import sys
import time

import aiohttp

# open loop: enough connections that the client is never what holds requests back
OPEN_LOOP_CONNECTIONS = 512


def load_requests(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


async def send(session: aiohttp.ClientSession, base_url: str, i: int, request: dict,
               due: float, timeout: float) -> dict:
    record = {"i": i, "tag": request.get("tag"), "due": due, "sent": time.time(),
              "done": None, "status": 0, "id": None, "error": None}
    try:
        body = {"data": request["data"].encode("utf-8")} if "data" in request \
            else {"json": request.get("body")}
        async with session.request(request["method"], base_url + request["path"],
                                   **body, headers=request.get("headers"),
                                   timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            payload = await response.read()
            record["status"] = response.status
            answer = _json_or_none(payload)
            if isinstance(answer, dict):
                record["id"] = answer.get("id")
                if response.status >= 400:
                    record["error"] = str(answer.get("error"))[:100]  # our envelope's code
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        record["error"] = type(exc).__name__
    record["done"] = time.time()
    return record


def _json_or_none(payload: bytes):
    try:
        return json.loads(payload)
    except ValueError:
        return None


async def open_loop(base_url: str, requests: list[dict], rate: float,
                    timeout: float) -> list[dict]:
    connector = aiohttp.TCPConnector(limit=OPEN_LOOP_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.time() + 0.2
        tasks = []
        for i, request in enumerate(requests):
            due = start + i / rate
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(session, base_url, i, request, due, timeout)))
        return list(await asyncio.gather(*tasks))


async def bounded(base_url: str, requests: list[dict], concurrency: int,
                  timeout: float) -> list[dict]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    results: list[dict] = []
    next_index = iter(range(len(requests)))

    async def client(session):
        for i in next_index:  # shared iterator: each request goes to exactly one client
            results.append(await send(session, base_url, i, requests[i], time.time(), timeout))

    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return sorted(results, key=lambda record: record["i"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hocvu_tools.bench.loadgen",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("requests")
    parser.add_argument("results")
    parser.add_argument("--base-url", required=True)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--rate", type=float, help="requests per second, open loop")
    mode.add_argument("--concurrency", type=int, help="clients, each waiting for its answer")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    args = parser.parse_args(argv)

    requests = load_requests(args.requests)
    if args.rate:
        results = asyncio.run(open_loop(args.base_url, requests, args.rate, args.timeout))
    else:
        results = asyncio.run(bounded(args.base_url, requests, args.concurrency, args.timeout))
    with open(args.results, "w", encoding="utf-8") as out:
        for record in results:
            out.write(json.dumps(record) + "\n")
    failed = sum(1 for record in results if record["status"] == 0)
    print(f"loadgen: {len(results)} requests, {failed} without an answer", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
