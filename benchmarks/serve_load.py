"""`cliffhmr serve` under load: N clients at once, each posting the same photo to /v1/predict a
bounded number of times; requests/s, median and 95th-percentile latency, and what was refused.

    .venv/bin/python benchmarks/serve_load.py --clients 1,4,16 --requests 4

A server is started on a free loopback port (`--queue` requests may wait behind the running one)
unless `--url` names a running one. Clients are polite: after a 503 they wait its Retry-After
before their next request, and never resend the refused one. Below the queue's capacity (1 +
`--queue` clients) every request must succeed; above it, refusals must be 503 or 429 with
Retry-After. Anything else is a failure, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "astronaut.jpg"


def post(url: str, photo: bytes, token: str | None):
    """One multipart POST of the photo -> (status, headers: case-insensitive)."""
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="photo.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n").encode() + photo + f"\r\n--{boundary}--\r\n".encode()  # fmt: skip
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", **({"Authorization": f"Bearer {token}"} if token else {})}
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "/v1/predict", body, headers), timeout=600) as r:
            r.read()
            return r.status, r.headers
    except urllib.error.HTTPError as e:
        e.read()
        return e.code, e.headers


def level(url: str, photo: bytes, clients: int, requests: int, token: str | None) -> dict:
    """`clients` threads, `requests` each -> the level's figures."""
    done: list[tuple[int, float, bool]] = []  # status, seconds, Retry-After given
    lock = threading.Lock()

    def client():
        for _ in range(requests):
            start = time.perf_counter()
            status, headers = post(url, photo, token)
            with lock:
                done.append((status, time.perf_counter() - start, headers["Retry-After"] is not None))
            if status in (429, 503) and headers["Retry-After"] is not None:
                time.sleep(float(headers["Retry-After"]))

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ok = [s for status, s, _ in done if status == 200]
    refused = sum(status in (429, 503) and retry for status, _, retry in done)
    return {
        "clients": clients, "requests": len(done), "ok": len(ok), "refused": refused, "failed": len(done) - len(ok) - refused,
        "requests_per_s": len(ok) / wall, "p50_s": float(np.percentile(ok, 50)) if ok else None,
        "p95_s": float(np.percentile(ok, 95)) if ok else None, "wall_s": wall,
    }  # fmt: skip


def start_server(queue: int, tmp: str, extra: list[str]) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "TMPDIR": tmp, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
    cmd = [sys.executable, "-m", "cliffhmr", "serve", "--port", "0", "--queue", str(queue), *extra]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "serving on " not in line:
        raise SystemExit(f"the server did not start: {line!r}")
    url = line.split("serving on ")[1].split()[0].rstrip("/")
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/v1/health", timeout=5).read()
            return proc, url
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise SystemExit("the server never answered /v1/health")


def table(rows: list[dict], capacity: int | None) -> str:
    lines = ["| clients | requests | ok | refused (503/429) | failed | requests/s | p50 latency (s) | p95 latency (s) |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for r in rows:
        p50, p95 = (f"{r[k]:.2f}" if r[k] is not None else "-" for k in ("p50_s", "p95_s"))
        lines.append(f"| {r['clients']} | {r['requests']} | {r['ok']} | {r['refused']} | {r['failed']} | {r['requests_per_s']:.2f} | {p50} | {p95} |")
    if capacity is not None:
        lines.append(f"\nQueue capacity: {capacity} requests (1 running + {capacity - 1} waiting).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,4,16", help="concurrent clients per level (default 1,4,16)")
    parser.add_argument("--requests", type=int, default=4, help="requests per client per level (default 4)")
    parser.add_argument("--queue", type=int, default=4, help="the started server's --queue (default 4, its default)")
    parser.add_argument("--url", help="a running server instead of starting one (its queue is then not known here)")
    parser.add_argument("--token", default=os.environ.get("CLIFFHMR_TOKEN"), help="the server's token (default: env CLIFFHMR_TOKEN)")
    parser.add_argument("--server-args", default="", help="more arguments for the started server, e.g. '--fit-iterations 60'")
    parser.add_argument("--photo", type=Path, default=PHOTO)
    parser.add_argument("--out", type=Path, help="write the table (.md) and figures (.json) here, e.g. benchmarks/results/serve_load")
    args = parser.parse_args(argv)
    photo = args.photo.read_bytes()
    proc, capacity = None, None
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        try:
            if args.url:
                url = args.url.rstrip("/")
            else:
                proc, url = start_server(args.queue, tmp, args.server_args.split())
                capacity = 1 + args.queue
            post(url, photo, args.token)  # a first request, untimed: lazy set-up stays out of the figures
            rows = [level(url, photo, int(c), args.requests, args.token) for c in args.clients.split(",")]
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=60)
    text = table(rows, capacity)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps({"capacity": capacity, "levels": rows}, indent=2) + "\n")
    below = [r for r in rows if capacity is not None and r["clients"] <= capacity]
    bad = [r for r in rows if r["failed"]] + [r for r in below if r["refused"]]
    if bad:
        print(f"failures: {[r['clients'] for r in bad]} clients", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
