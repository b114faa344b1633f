"""The model `lsr train` trains: a siamese SPLADE or an inference-free student.

* ``siamese``: one MLM SPLADE encoder (fill-mask Transformer + max pooling)
  for queries and documents, e.g. the bundled splade-tiny.
* ``inference_free``: documents go through the MLM SPLADE encoder; queries
  through a token-weight table only (sentence-transformers'
  ``SparseStaticEmbedding``: a query's vector is the table's weight at each
  of its tokens), so a query costs a tokenizer call and a lookup. The table
  starts as the IDF vector the recipe names (OpenSearch's doc-v2/v3 models)
  and is either frozen or learned with its own learning rate (Li-LSR style).
  The two sides sit under ST's ``Router`` (routes "query" and "document"),
  so the student saves and loads in sentence-transformers format and
  ``model.encode_query`` / ``encode_document`` pick the side.
"""
from __future__ import annotations

import numpy as np

from ..encoders.splade import is_inference_free, side_modules

KINDS = ("siamese", "inference_free")


def document_tokenizer(model):
    """The tokenizer of the document side (the only one of a siamese model)."""
    return side_modules(model, "document")[0].tokenizer


def build_student(model, kind: str, idf: np.ndarray | None = None, learn_query_weights: bool = False):
    """The student of ``kind`` from a loaded ST SparseEncoder (lsr.encoders.splade.load_sparse_encoder).

    For ``inference_free``, a model that already is inference-free is
    returned as it is (continued training); any other SPLADE model becomes
    the document side and ``idf`` (vocabulary-sized) the query table.
    """
    if kind not in KINDS:
        raise ValueError(f"student kind {kind!r}; choose from {', '.join(KINDS)}")
    if kind == "siamese":
        if is_inference_free(model):
            raise ValueError("the base model is inference-free; train it with model.kind = \"inference_free\"")
        return model
    if is_inference_free(model):
        return model
    import torch
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules.router import Router
    from sentence_transformers.sparse_encoder.modules import SparseStaticEmbedding
    if idf is None:
        raise ValueError("an inference-free student needs query weights: an idf vector (loss.idf)")
    tokenizer = document_tokenizer(model)
    idf = np.asarray(idf, dtype=np.float32)
    if idf.shape != (len(tokenizer),):
        raise ValueError(f"the idf vector has {idf.shape[0]} entries, the model's tokenizer {len(tokenizer)}")
    table = SparseStaticEmbedding(tokenizer=tokenizer, weight=torch.tensor(idf), frozen=not learn_query_weights)
    router = Router.for_query_document(query_modules=[table], document_modules=list(model))
    return SparseEncoder(modules=[router], device=str(model.device))


def query_table_parameters(model) -> list[str]:
    """Names of the trainable query-table weights (their own learning rate in the trainer)."""
    from sentence_transformers.sparse_encoder.modules import SparseStaticEmbedding
    if not is_inference_free(model):
        return []
    table = list(model)[0].sub_modules["query"]
    if not all(isinstance(m, SparseStaticEmbedding) for m in table):
        return []  # a neural query side trains at the main learning rate
    own = {id(p) for p in table.parameters() if p.requires_grad}
    return [n for n, p in model.named_parameters() if id(p) in own]


def router_mapping(columns) -> dict:
    """Dataset column -> route: the query column to the table, every other text column to the encoder."""
    return {c: ("query" if c == "query" else "document") for c in columns if c != "label"}

