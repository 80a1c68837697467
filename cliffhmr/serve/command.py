"""`cliffhmr serve`: bind the socket, load the models once, run the application under uvicorn."""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import socket
import sys

from ..errors import CliffError
from .work import Limits

EXTRA = ("fastapi", "uvicorn", "multipart")  # multipart: python-multipart, FastAPI's form parser
CONNECTIONS = 64


def check_extra() -> None:
    missing = [name for name in EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise CliffError(f"cliffhmr serve needs the serve extra: pip install 'cliff-hmr[serve]' (missing: {', '.join(missing)})")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on host:port (port 0: one the system chooses), before the models
    load, so that a port in use is one line at once."""
    if not 0 <= port <= 65535:
        raise CliffError(f"--port must be between 0 and 65535, got {port}")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        raise CliffError(f"cannot serve on {host}:{port} ({e.strerror or e})") from None
    return sock


def serve(predictor_factory, host: str, port: int, limits: Limits, token: str | None) -> int:
    """Serve until interrupted (Ctrl-C, SIGTERM); the result folders go with the server."""
    check_extra()
    token = token or os.environ.get("CLIFFHMR_TOKEN") or None
    sock = bind(host, port)
    if not is_loopback(host):
        auth = "its token is required on /v1" if token else "no token is set (--token or CLIFFHMR_TOKEN)"
        print(f"cliffhmr: warning: serving on {host}, not the loopback address: anyone who can reach this machine can use it; {auth}",
              file=sys.stderr)  # fmt: skip
    import uvicorn

    from .app import create_app

    app = create_app(predictor_factory(), limits, token)
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"cliffhmr: serving on http://{shown}:{port}/ (API under /v1, OpenAPI at /v1/openapi.json; Ctrl-C stops)", flush=True)
    # A backstop for connections at once (each may hold an upload being received): beyond it
    # uvicorn answers 503 itself, before the application's JSON refusals.
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5, limit_concurrency=CONNECTIONS)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return 0
