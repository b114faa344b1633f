"""Starting the service: thread settings, worker processes, uvicorn.

uvicorn is the server, in ``--workers N`` processes (each opens the index's memory-mapped arrays, so the page
cache holds one copy of the index for all of them; :mod:`.workers` starts them, one SO_REUSEPORT socket
each, so that the kernel spreads connections over them), and on SIGTERM or
SIGINT stops accepting connections, lets the requests in flight finish and exits 0. ``graceful_s`` bounds the
wait (default 6 s, so that the process is gone within 10 s of SIGTERM): clients that keep sending on
keep-alive connections can otherwise hold a worker open (seen under load), and an orchestrator sends SIGKILL
after its own grace period anyway. Longer answers (/ask) need a longer ``--graceful-timeout``.
Each worker gets its settings from the environment (``LSR_SERVE``: the ServeConfig and limits as JSON; the
API key is read from the variable the user named, never copied).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import tempfile
from dataclasses import asdict

from .schemas import Limits
from .state import ServeConfig

ENV = "LSR_SERVE"
# One thread per compute slot: set before torch, numba or a BLAS starts its pool (they read these at import).
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def one_thread_per_slot() -> None:
    """Every native pool to one thread (the server's limiter runs ``threads`` of them at once): the
    variables for libraries not loaded yet, the calls for torch and numba if they are. Process-wide, so
    only a server process does this (`lsr serve`'s workers), not an app embedded in another program."""
    import sys
    for var in THREAD_VARS:
        if var == "NUMBA_NUM_THREADS" and "numba" in sys.modules:
            continue  # numba refuses a changed value once its pool runs; set_num_threads below does it
        os.environ[var] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the Rust tokenizer's own pool, per call
    if "torch" in sys.modules:
        import torch
        torch.set_num_threads(1)
    if "numba" in sys.modules:
        import numba
        numba.set_num_threads(1)


def app_from_env():
    """The app factory each uvicorn worker calls."""
    from .app import create_app
    settings = json.loads(os.environ[ENV])
    one_thread_per_slot()
    key_var = settings.get("api_key_env")
    api_key = os.environ.get(key_var) if key_var else None
    config = ServeConfig(**settings["config"])
    if config.model_threads is None:  # one thread per slot, the models' calls included (a batch would take every core)
        config.model_threads = 1
    app = create_app(config, Limits(**settings["limits"]), api_key)
    one_thread_per_slot()  # torch and numba were loaded just now (the index, the query model's warm-up)
    return app


def serve(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          api_key_env: str | None = None, limits: Limits | None = None, graceful_s: float = 6.0,
          log_level: str = "info") -> None:
    """Run the service until SIGTERM/SIGINT (blocking)."""
    import uvicorn
    limits = limits or Limits()
    if api_key_env is not None and not os.environ.get(api_key_env):
        from ..errors import ParameterError
        raise ParameterError(f"--api-key-env {api_key_env}: that environment variable is not set (or empty)")
    os.environ[ENV] = json.dumps({"config": config.to_json(), "limits": asdict(limits), "api_key_env": api_key_env})
    one_thread_per_slot()
    metrics_dir = None
    if workers > 1:  # prometheus_client's multiprocess mode: /metrics sums every worker's counters
        metrics_dir = tempfile.mkdtemp(prefix="lsr-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        from .workers import balanced, run_workers
        if workers > 1 and balanced():
            options = {"timeout_graceful_shutdown": graceful_s, "log_level": log_level, "access_log": False}
            return run_workers(workers, host, port, options, graceful_s)
        config_ = uvicorn.Config("lsr.serve.run:app_from_env", factory=True, host=host, port=port, workers=workers,
                                 timeout_graceful_shutdown=graceful_s, log_level=log_level, access_log=False)
        if workers == 1:
            # uvicorn re-raises the signal that stopped it once it has shut down gracefully, which would end
            # the process with -15 under the default handler: a graceful stop exits 0.
            signal.signal(signal.SIGTERM, lambda *_: None)
            uvicorn.Server(config_).run()
        else:  # no SO_REUSEPORT balancing: as uvicorn.run does, with TCP_NODELAY on the shared socket
            from uvicorn.supervisors import Multiprocess
            sock = config_.bind_socket()
            # uvicorn binds the workers' shared socket with protocol 0, and asyncio only sets TCP_NODELAY on
            # connections of a socket whose protocol says TCP: without it, Nagle's algorithm held each response
            # ~40 ms for the client's delayed ACK (measured: /health 44 ms with 2 workers, 1 ms with 1).
            # Accepted connections inherit the option from the listening socket.
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            Multiprocess(config_, sockets=[sock]).run()
    except KeyboardInterrupt:
        pass
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
