"""`lsr serve`: an HTTP search service over one index (FastAPI on uvicorn; the ``serve`` extra).

    from lsr.serve import create_app, ServeConfig
    app = create_app(ServeConfig("indexes/scifact"))     # an ASGI app: run it with any ASGI server

See docs/serve.md for the endpoints, limits and deployment notes.
"""
from .schemas import Limits
from .state import ServeConfig


def create_app(config: ServeConfig, limits: Limits | None = None, api_key: str | None = None):
    """The ASGI app serving ``config.index_dir`` (see :func:`lsr.serve.app.create_app`)."""
    from .app import create_app as create
    return create(config, limits, api_key)


__all__ = ["create_app", "ServeConfig", "Limits"]
