"""Worker processes that each listen on their own ``SO_REUSEPORT`` socket (Linux), so that the kernel
spreads connections over the workers.

uvicorn's own ``--workers`` shares one listening socket: whichever worker wakes first accepts, and with
keep-alive clients (a connection lives for thousands of requests) the load stayed where it landed. On this
machine, 8 clients against 2 workers (one compute slot each) got 74-80 q/s, what one worker serves alone,
in some runs and 168 in others. With one socket per worker the kernel hashes each new connection to a
worker. Elsewhere (no ``SO_REUSEPORT`` balancing) :func:`lsr.serve.run.serve` uses uvicorn's supervisor.

The parent starts the workers, restarts one that dies (not one that fails at start: that would fail again),
and on SIGTERM or SIGINT passes SIGTERM on, waits for them to shut down gracefully, and returns (exit 0).
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
import time

STARTUP_FAILURE = 3  # uvicorn's exit code for a server that could not start


def balanced() -> bool:
    """Whether this platform spreads connections over ``SO_REUSEPORT`` sockets (Linux does)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A bound (not yet listening) TCP socket with SO_REUSEPORT and TCP_NODELAY (accepted connections inherit it)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         proto=socket.IPPROTO_TCP)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(address)
    return sock


def _worker(host: str, port: int, options: dict, ready) -> None:  # pragma: no cover - a child process
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets)
            if self.started:
                ready.set()  # serving: a later death is a crash to restart from, not a start that fails

    try:
        sock = reuseport_socket(host, port)
    except OSError as e:
        print(f"error: cannot listen on {host}:{port} ({e.strerror})", file=sys.stderr)
        sys.exit(STARTUP_FAILURE)
    server = Server(uvicorn.Config("lsr.serve.run:app_from_env", factory=True, **options))
    signal.signal(signal.SIGTERM, lambda *_: None)  # uvicorn re-raises it after its graceful shutdown
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def run_workers(n: int, host: str, port: int, options: dict, graceful_s: float) -> None:
    """Run ``n`` workers until SIGTERM/SIGINT; raises OSError when the port is taken."""
    reuseport_socket(host, port).close()  # the port is free (or ours to share): fail here, not in each worker
    context = multiprocessing.get_context("spawn")
    stop = []
    handlers = {sig: signal.signal(sig, lambda s, _: stop.append(s)) for sig in (signal.SIGTERM, signal.SIGINT)}

    def start():
        ready = context.Event()
        p = context.Process(target=_worker, args=(host, port, options, ready), daemon=False)
        p.start()
        return p, ready

    procs = [start() for _ in range(n)]
    try:
        while not stop:
            time.sleep(0.2)
            for i, (p, ready) in enumerate(procs):
                if p.is_alive() or stop:
                    continue
                if not ready.is_set():
                    stop.append(None)  # it died before serving: it would again, so stop everything
                    from ..errors import IndexError_
                    raise IndexError_(f"a worker failed to start (exit code {p.exitcode}); see the messages above")
                print(f"worker {p.pid} died (exit code {p.exitcode}); starting another", file=sys.stderr)
                procs[i] = start()
    finally:
        for p, _ in procs:
            if p.is_alive():
                os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + graceful_s + 3
        for p, _ in procs:
            p.join(max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
