"""``lsr serve``: the HTTP service (lsr.serve, the ``serve`` extra)."""
from typing import Annotated, Optional

import typer

from .options import Device, IndexDir, SearchBackend, check_inference

SERVER = "Server"
LIMITS = "Limits (per request)"


def serve(
    index_dir: IndexDir,
    host: Annotated[str, typer.Option("--host", metavar="ADDR", rich_help_panel=SERVER,
                                      help="address to listen on (127.0.0.1: this machine only)")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, metavar="N", rich_help_panel=SERVER,
                                      help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, metavar="N", rich_help_panel=SERVER,
                                         help="worker processes (they share the memory-mapped index)")] = 1,
    threads: Annotated[Optional[int], typer.Option(
        "--threads", min=1, metavar="N", rich_help_panel=SERVER,
        help="searches/encodes run at once per worker, one thread each (default: CPU cores / workers)")] = None,
    api_key_env: Annotated[Optional[str], typer.Option(
        "--api-key-env", metavar="VAR", rich_help_panel=SERVER,
        help="require the key held in this environment variable (Authorization: Bearer KEY, or X-API-Key)")] = None,
    mode: Annotated[Optional[str], typer.Option(
        "--mode", metavar="sparse|hybrid|dense", rich_help_panel=SERVER,
        help="default mode of /search (default: hybrid when the index has a dense list, else sparse)")] = None,
    generator: Annotated[str, typer.Option("--generator", metavar="MODEL", rich_help_panel=SERVER,
                                           help="causal LM of /ask (loaded on the first question)")] = "smollm2-135m",
    max_k: Annotated[int, typer.Option("--max-k", min=1, metavar="N", rich_help_panel=LIMITS)] = 1000,
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, metavar="N", rich_help_panel=LIMITS,
                                           help="queries, texts or documents per request")] = 128,
    max_body: Annotated[int, typer.Option("--max-body", min=1024, metavar="BYTES", rich_help_panel=LIMITS)] = 1 << 20,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, metavar="S", rich_help_panel=LIMITS,
                                           help="answer 503 after this many seconds")] = 30.0,
    graceful_timeout: Annotated[float, typer.Option(
        "--graceful-timeout", min=0.0, metavar="S", rich_help_panel=SERVER,
        help="on SIGTERM/Ctrl-C, wait this long for requests in flight, then stop")] = 6.0,
    log_level: Annotated[str, typer.Option("--log-level", metavar="LEVEL", rich_help_panel=SERVER)] = "info",
    backend: SearchBackend = None,
    device: Device = None,
):
    """Serve an index over HTTP: /search, /search/batch, /encode, /ask, /documents, /health, /info, /metrics
    (OpenAPI docs at /docs). SIGTERM or Ctrl-C: in-flight requests finish, then it exits 0.

    [b]Example[/b]: lsr serve indexes/scifact --port 8000   then   curl localhost:8000/health
    """
    import logging
    import os

    from ..errors import ParameterError
    logging.disable(logging.NOTSET)  # the CLI mutes INFO logs; a server's own (uvicorn's) are wanted
    try:
        from ..serve.run import serve as run
        from ..serve.schemas import Limits
        from ..serve.state import ServeConfig
    except ImportError as e:
        raise ParameterError(f"lsr serve needs the serve extra ({e.name} is missing): "
                             "pip install 'lsr[serve]'") from None
    if mode is not None and mode not in ("sparse", "hybrid", "dense"):
        raise ParameterError(f"--mode {mode!r}; choose from sparse, hybrid, dense")
    if not index_dir.exists():
        raise ParameterError(f"index not found: {index_dir}")
    check_inference(backend, None, device, index_dir)  # here, not in a worker: a bad one stops `lsr serve` itself
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    config = ServeConfig(str(index_dir), mode=mode, generator=generator, threads=threads, backend=backend,
                         device=device)
    limits = Limits(max_body_bytes=max_body, max_k=max_k, max_batch=max_batch, timeout_s=timeout)
    typer.echo(f"serving {index_dir} on http://{host}:{port} ({workers} worker(s), {threads} thread(s) each; "
               f"docs at /docs)", err=True)
    try:
        run(config, host=host, port=port, workers=workers, api_key_env=api_key_env, limits=limits,
            graceful_s=graceful_timeout, log_level=log_level)
    except OSError as e:  # the port, not a file: taken, or not ours to bind
        raise ParameterError(f"cannot listen on {host}:{port} ({e.strerror or e}); choose another --port") from None
