"""Encoders composed by name: the unified framework's query/document sides,
the echo decoder and PROSPER.

Names (case-insensitive; ``@BASE`` picks the backbone, any name
``resolve_model`` accepts):

* ``q{A}_d{B}[@BASE]`` with A, B in ``mlm`` (SPLADE: MLM head, expansion,
  max pooling), ``mlp`` (term weighting of the input's own tokens, no
  expansion), ``bin`` (1 for each input token), ``idf`` (an IDF table);
  the naming of Nguyen et al., "A Unified Framework for Learned Sparse
  Retrieval" (ECIR 2023), e.g. ``qmlp_dmlm``, ``qbin_dmlm``. Default base:
  splade-tiny. Different sides sit under ST's ``Router`` (routes "query"
  and "document"); equal sides share one stack. ``idf`` needs a table:
  ``lsr compose NAME --idf-corpus DATASET -o DIR`` builds and saves one.
* ``echo[@CAUSAL_LM]`` (alias ``echo-smollm2``): a causal LM as a sparse
  encoder, Mistral-SPLADE style (:mod:`.modules.decoder`), top-k pruned by
  a focusing window. Default backbone: the bundled SmolLM2-135M.
* ``prosper[@BASE]`` (aliases ``prosper-smollm2``, ``prosper-splade-tiny``):
  the echo decoder, or an MLM SPLADE when BASE is a masked LM, plus
  PROSPER's literal residual network and focusing window.

A composition builds in memory with deterministic initial weights, so an
index built with ``--model qbin_dmlm`` reloads the same encoder at search
time. Trained compositions are ordinary sentence-transformers folders.
"""
from __future__ import annotations

import numpy as np

from ..errors import ModelError

# The grammar (names, aliases, default backbones) lives in .names; re-exported for older imports.
from .names import COMPOSITION_GRAMMAR, DEFAULT_BASE, SIDES, Spec, describe, parse_name  # noqa: F401


def build(spec: Spec | str, idf: np.ndarray | None = None, max_length: int = 128, query_k: int = 64,
          document_k: int = 256, focus_start: int = 0, focus_steps: int = 0, device: str | None = None,
          learn_idf: bool = False):
    """The sentence-transformers SparseEncoder for ``spec`` (a Spec or a composition name)."""
    if isinstance(spec, str):
        parsed = parse_name(spec)
        if parsed is None:
            describe(spec)  # a malformed composition gets its own message
            raise ModelError(f"{spec!r} is not a composition name ({COMPOSITION_GRAMMAR})")
        spec = parsed
    from sentence_transformers import SparseEncoder

    from .registry import resolve_model
    base = resolve_model(spec.base)
    window = dict(query_k=query_k, document_k=document_k, start_k=focus_start, focus_steps=focus_steps)
    if spec.family == "unified":
        if "idf" in (spec.query, spec.document) and idf is None:
            raise ModelError(f"q{spec.query}_d{spec.document} needs an IDF table: "
                             f"lsr compose q{spec.query}_d{spec.document} --idf-corpus DATASET -o DIR, "
                             "then index with --model DIR")
        if spec.query == spec.document:
            modules = _side(spec.query, base.path, idf, max_length, learn_idf)
        else:
            from sentence_transformers.base.modules.router import Router
            modules = [Router.for_query_document(
                query_modules=_side(spec.query, base.path, idf, max_length, learn_idf),
                document_modules=_side(spec.document, base.path, idf, max_length, learn_idf))]
        return SparseEncoder(modules=modules, device=device)

    from .modules import EchoDecoder, FocusingWindow, LiteralResidual
    causal = base.kind == "causal-lm"
    if spec.family == "echo" and not causal:
        raise ModelError(f"echo needs a causal LM backbone; {spec.base!r} is not one")
    if causal:
        dec = EchoDecoder(str(base.path), max_seq_length=max_length)
        modules = [dec]
        if spec.family == "prosper":
            modules.append(LiteralResidual(dec.hidden_size, _special_ids(dec.tokenizer)))
        modules.append(FocusingWindow(**window))
        return SparseEncoder(modules=modules, device=device)
    # PROSPER on a masked LM: SPLADE + literal residual (read from the MLM logits) + window.
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    from .modules import TaskTransformer
    mlm = TaskTransformer(str(base.path), transformer_task="fill-mask", max_seq_length=max_length)
    vocab = mlm.auto_model.get_output_embeddings().weight.shape[0]
    return SparseEncoder(modules=[mlm, SpladePooling("max"), LiteralResidual(vocab, _special_ids(mlm.tokenizer)),
                                  FocusingWindow(**window)], device=device)


def _side(kind: str, base_path, idf, max_length: int, learn_idf: bool) -> list:
    import torch
    from sentence_transformers.sparse_encoder.modules import SparseStaticEmbedding, SpladePooling, Transformer

    from .modules import MLPTermWeighting
    if kind == "mlm":
        return [Transformer(str(base_path), transformer_task="fill-mask", max_seq_length=max_length),
                SpladePooling("max")]
    if kind == "mlp":
        enc = Transformer(str(base_path), transformer_task="feature-extraction", max_seq_length=max_length)
        tok = enc.tokenizer
        return [enc, MLPTermWeighting(enc.auto_model.config.hidden_size, len(tok), _special_ids(tok))]
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(base_path))
    if kind == "bin":
        return [SparseStaticEmbedding(tokenizer=tok, weight=torch.ones(len(tok)), frozen=True)]
    idf = np.asarray(idf, dtype=np.float32)
    if idf.shape != (len(tok),):
        raise ModelError(f"the IDF table has {idf.shape[0]} entries, the tokenizer of {base_path} {len(tok)}")
    return [SparseStaticEmbedding(tokenizer=tok, weight=torch.tensor(idf), frozen=not learn_idf)]


def _special_ids(tokenizer) -> list[int]:
    return sorted({int(i) for i in tokenizer.all_special_ids})

