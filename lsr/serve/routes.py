"""The endpoints. Each one checks its request (pydantic, then lsr's own checks), runs the work through
the server's limiter (:func:`lsr.serve.app.create_app`) and answers JSON."""
import json
import time

from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ..errors import QueryError
from .metrics import CONTENT_TYPE
from .schemas import BatchResponse, SearchResponse

DESCRIPTION = """Learned sparse retrieval over one lsr index.

`POST /search` and `/search/batch` answer as `lsr.Retriever` does for the same request (`mode`, `k`, `where`,
`params`); `explain` adds each hit's top contributing tokens. `POST /encode` returns sparse vectors,
`POST /ask` a cited RAG answer (`stream`: server-sent events), `POST`/`DELETE /documents` change a living
index. See docs/serve.md."""


class NotFound(Exception):
    """404: a document id the index does not hold."""


def _hits(retriever, query: str, hits, fields, explain: bool, terms: int) -> list[dict]:
    out = [h.to_dict(text="text" in fields, metadata="metadata" in fields) for h in hits]
    if explain and hits:
        try:
            why = retriever.explain(query, [h.doc_id for h in hits], top=terms)
        except KeyError as e:  # a hit deleted by a commit in between: not the client's doing
            raise NotFound(str(e.args[0]) if e.args else "document not found") from None
        for d, w in zip(out, why):
            d["explain"] = w["terms"]
    return out


def add_routes(app: FastAPI, models: dict, state, metrics, run, limits) -> None:
    Search, Batch, Encode = models["search"], models["batch"], models["encode"]
    Add, Delete, Ask = models["add"], models["delete"], models["ask"]

    def params_of(req):
        if "explain_terms" in req.model_fields_set and not req.explain:
            raise QueryError("explain_terms sets how many tokens explain shows; add \"explain\": true")
        return req.params.model_dump(exclude_none=True) if req.params is not None else None

    async def searched(req, queries: list[str]):
        """(hits per query, generation, ms) of one search request: a single query is a batch of one,
        as ``Retriever.search`` is."""
        start = time.perf_counter()
        params = params_of(req)

        def work():
            r = state.for_request(req.mode, params)
            results = r.batch_search(queries, req.k, where=req.where)
            return [_hits(r, q, hits, req.fields, req.explain, req.explain_terms)
                    for q, hits in zip(queries, results)], r.generation
        results, generation = await run(work)
        return results, generation, 1000 * (time.perf_counter() - start)

    @app.post("/search", response_model=SearchResponse, response_model_exclude_none=True)
    async def search(req: Search):
        """Top-k hits for one query."""
        results, generation, took = await searched(req, [req.query])
        return {"hits": results[0], "took_ms": took, "generation": generation}

    @app.post("/search/batch", response_model=BatchResponse, response_model_exclude_none=True)
    async def search_batch(req: Batch):
        """Top-k hits for each of several queries (one batch through the encoder and the index)."""
        results, generation, took = await searched(req, req.queries)
        return {"results": results, "took_ms": took, "generation": generation}

    @app.post("/encode")
    async def encode(req: Encode):
        """Sparse vectors of texts with the index's model: {indices, values} or {token: weight} each."""
        start = time.perf_counter()

        def work():
            vectors = state.encode(req.texts, req.side)
            tokens = vectors.vocab.tokens
            out = []
            for i in range(len(req.texts)):
                idx, val = vectors.row(i)
                order = sorted(range(len(idx)), key=lambda j: -val[j])[:req.top] if req.top else range(len(idx))
                if req.format == "tokens":
                    out.append({tokens[int(idx[j])]: float(val[j]) for j in order})
                else:
                    out.append({"indices": [int(idx[j]) for j in order], "values": [float(val[j]) for j in order]})
            return out, vectors.vocab.size
        vectors, size = await run(work)
        return {"vectors": vectors, "vocab_size": size, "took_ms": 1000 * (time.perf_counter() - start)}

    @app.post("/ask")
    async def ask(req: Ask):
        """A RAG answer with citations; ``stream``: server-sent events (``token`` events, then ``answer``)."""
        where = req.where
        if not req.stream:
            answer = await run(lambda: state.rag(req.mode, req.k, req.budget, req.max_new_tokens)
                               .ask(req.question, where=where), answer=True)
            return answer.to_dict()

        def ready():  # the question, the mode, the filter and the generator checked before the stream's 200
            if not req.question.strip():
                raise QueryError("question is empty")
            state.retriever(req.mode).allowed(where)
            return state.rag(req.mode, req.k, req.budget, req.max_new_tokens)
        pipeline = await run(ready, answer=True)
        return StreamingResponse(_sse(run, pipeline, req.question, where), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @app.post("/documents")
    async def add_documents(req: Add):
        """Add (or replace, by id) documents: encoded with the index's models, committed as a segment."""
        docs = [d.model_dump() for d in req.documents]

        # a commit runs to its end (no timeout): its client must learn whether it happened
        return _report(await run(lambda: state.write(lambda w: w.add(docs), merge=req.merge), timeout=None), state)

    @app.delete("/documents")
    async def delete_documents(req: Delete):
        """Delete documents by id and/or metadata filter (``where``)."""
        if not req.ids and not req.where:
            raise QueryError("give ids and/or where")
        return _report(await run(lambda: state.write(lambda w: w.delete(req.ids, where=req.where)), timeout=None),
                       state)

    @app.get("/documents/{doc_id}")
    async def get_document(doc_id: str):
        """A stored document: doc_id, title, text, metadata."""
        def work():
            try:
                return state.for_request(None, None).get([doc_id])[0]
            except KeyError as e:
                raise NotFound(str(e.args[0]) if e.args else doc_id) from None
        return await run(work)

    @app.get("/documents/{doc_id}/terms")
    async def document_terms(doc_id: str, top: int = Query(20, ge=1, le=1000)):
        """A document's heaviest tokens in the sparse list, with the weights search scores with."""
        def work():
            try:
                return {"doc_id": doc_id, "terms": state.for_request("sparse", None).doc_terms(doc_id, top)}
            except KeyError as e:
                raise NotFound(str(e.args[0]) if e.args else doc_id) from None
        return await run(work)

    @app.get("/health")
    async def health():
        """Liveness and what is served (no API key needed)."""
        return {"status": "ok", "index": state.index_dir.name, "generation": state.generation,
                "docs": state.docs, "mode": state.default_mode, "lists": list(state.lists)}

    @app.get("/info")
    async def info():
        """What `lsr info --json` shows for the index."""
        from ..index.info import index_info
        return await run(index_info, state.index_dir)

    @app.get("/metrics")
    async def metrics_():
        """Prometheus text: requests, errors, latency histograms by endpoint, in flight, commit served."""
        metrics.generation.set(state.generation or 0)
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.exception_handler(NotFound)
    async def not_found(request, exc: NotFound):
        return JSONResponse({"error": str(exc)}, status_code=404)


def _report(report: dict, state) -> dict:
    return {**{k: v for k, v in report.items() if k != "merges"}, "merges": len(report.get("merges") or []),
            "docs": state.docs}


class ClientLeft(Exception):
    """Raised in the generating thread when the stream's client is gone: generation stops there."""


async def _sse(run, pipeline, question: str, where):
    """Server-sent events: ``token`` (a piece of generated text), then ``answer`` (the cited answer's JSON),
    or ``error``. The generator runs in a worker thread and hands its pieces over through a queue; when the
    client leaves (or the stream ends otherwise), the next piece stops the generation."""
    import asyncio
    import threading
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    left = threading.Event()

    def on_token(piece: str) -> None:
        if left.is_set():
            raise ClientLeft
        loop.call_soon_threadsafe(queue.put_nowait, ("token", piece))

    async def produce():
        try:
            answer = await run(lambda: pipeline.ask(question, where=where, on_token=on_token), answer=True)
            await queue.put(("answer", answer.to_dict()))
        except Exception as e:  # noqa: BLE001 - reported to the client as an event: the status is already sent
            await queue.put(("error", {"error": str(e)}))

    task = asyncio.create_task(produce())
    try:
        while True:
            event, data = await queue.get()
            yield f"event: {event}\ndata: {json.dumps(data)}\n\n"
            if event != "token":
                break
    finally:
        left.set()
        if not task.done():
            task.cancel()
