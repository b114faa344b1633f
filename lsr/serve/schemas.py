"""The HTTP API's requests and responses (pydantic): every request model forbids unknown fields, so a
misspelt option is a 422 naming it, never silently ignored. Limits (k, batch size, query length) come
from :class:`Limits`, set per server."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; beyond it: 413 (body) or 422 (fields)."""

    max_body_bytes: int = 1 << 20  # 1 MiB
    max_k: int = 1000
    max_batch: int = 128  # queries of /search/batch, texts of /encode, documents of POST /documents
    max_query_chars: int = 4096
    max_document_chars: int = 1 << 19  # 512 Ki characters
    timeout_s: float = 30.0


class Strict(BaseModel):
    # unknown fields are refused (a misspelt option is never silently ignored), and so are NaN and infinities
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SearchParams(Strict):
    """Per-request search settings. query_cut, heap_factor, knn: a seismic index's (OpenSearch's top_n,
    heap_factor, and its k-NN refinement); fusion, norm, weights, rrf_k: a hybrid search's fusion."""

    query_cut: Optional[int] = Field(None, ge=1, description="query terms kept (seismic)")
    heap_factor: Optional[float] = Field(None, ge=0, description="block pruning factor (seismic)")
    knn: Optional[int] = Field(None, ge=0, description="k-NN graph neighbours re-scored (seismic)")
    fusion: Optional[Literal["convex", "rrf"]] = Field(None, description="hybrid: fusion method")
    norm: Optional[Literal["minmax", "zscore", "none"]] = Field(None, description="hybrid: score normalisation")
    weights: Optional[list[float]] = Field(None, description="hybrid: one weight per fused list")
    rrf_k: Optional[int] = Field(None, ge=1, description="hybrid: RRF's k")


Mode = Literal["sparse", "dense", "hybrid"]
Field_ = Literal["text", "metadata"]


def request_models(limits: Limits) -> dict[str, type[BaseModel]]:
    """The request models with this server's limits in their field constraints (and so in /docs)."""
    query = (str, Field(..., min_length=1, max_length=limits.max_query_chars, description="the query text"))
    k = (int, Field(10, ge=1, le=limits.max_k, description=f"hits per query (1..{limits.max_k})"))
    common = dict(
        k=k,
        mode=(Optional[Mode], Field(None, description="sparse | dense | hybrid (default: the server's)")),
        where=(Optional[dict[str, Any]], Field(None, description="metadata filter, as `lsr search --where`")),
        params=(Optional[SearchParams], None),
        fields=(list[Field_], Field(default_factory=list, description="stored fields to return: text, metadata")),
        explain=(bool, Field(False, description="each hit's top contributing tokens (query weight x doc weight)")),
        explain_terms=(int, Field(5, ge=1, le=100, description="tokens per explained hit")),
    )
    search = create_model("SearchRequest", __base__=Strict, query=query, **common)
    batch = create_model("BatchSearchRequest", __base__=Strict,
                         queries=(list[query[0]], Field(..., min_length=1, max_length=limits.max_batch)),
                         **common)
    text = (str, Field(..., max_length=max(limits.max_query_chars, limits.max_document_chars)))
    encode = create_model(
        "EncodeRequest", __base__=Strict,
        texts=(list[text[0]], Field(..., min_length=1, max_length=limits.max_batch)),
        side=(Literal["query", "document"], "query"),
        format=(Literal["sparse", "tokens"], Field("sparse", description="sparse: {indices, values}; tokens: "
                                                   "{token: weight}")),
        top=(Optional[int], Field(None, ge=1, description="keep each vector's top weights only")))
    doc = create_model(
        "Document", __base__=Strict,
        doc_id=(str, Field(..., min_length=1, max_length=1024)),
        title=(str, Field("", max_length=limits.max_document_chars)),
        text=(str, Field(..., max_length=limits.max_document_chars)),
        metadata=(dict[str, Any], Field(default_factory=dict)))
    add = create_model("AddDocuments", __base__=Strict,
                       documents=(list[doc], Field(..., min_length=1, max_length=limits.max_batch)),
                       merge=(bool, Field(True, description="apply the index's merge policy after the commit")))
    delete = create_model("DeleteDocuments", __base__=Strict,
                          ids=(list[str], Field(default_factory=list, max_length=100_000)),
                          where=(Optional[dict[str, Any]], None))
    ask = create_model(
        "AskRequest", __base__=Strict,
        question=query, k=(int, Field(5, ge=1, le=min(limits.max_k, 50))),
        mode=common["mode"], where=common["where"],
        budget=(int, Field(768, ge=16, le=8192, description="token budget of the packed passages")),
        max_new_tokens=(Optional[int], Field(None, ge=1, le=1024)),
        stream=(bool, Field(False, description="server-sent events: token events, then the answer")))
    return {"search": search, "batch": batch, "encode": encode, "add": add, "delete": delete, "ask": ask}


class Term(BaseModel):
    token: str
    query_weight: float
    doc_weight: float
    contribution: float


class HitOut(BaseModel):
    doc_id: str
    score: float
    title: Optional[str] = None
    text: Optional[str] = None
    metadata: Optional[dict[str, Any]] = None
    list_scores: Optional[dict[str, Optional[float]]] = None
    explain: Optional[list[Term]] = None


class SearchResponse(BaseModel):
    hits: list[HitOut]
    took_ms: float
    generation: Optional[int] = None


class BatchResponse(BaseModel):
    results: list[list[HitOut]]
    took_ms: float
    generation: Optional[int] = None
