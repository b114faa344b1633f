"""SPLADE encoder on sentence-transformers' SparseEncoder, with a fast CPU path.

The model *is* a sentence-transformers ``SparseEncoder`` (fill-mask
Transformer + SpladePooling), so it saves, loads and trains like any ST
sparse model. Inference goes through :meth:`SpladeEncoder.encode`, which for
the standard max-pooled SPLADE computes exactly what ST computes but skips
the work ST spends on a ``batch x seq_len x vocab`` tensor:

* texts are tokenised once and batched by token length, so batches carry
  almost no padding;
* the vocabulary projection runs only over each text's real tokens, one text
  at a time, never over padding;
* since ``log1p(relu(x))`` is monotonic, ``max_t log1p(relu(z_t))`` equals
  ``log1p(relu(max_t z_t))``: we take the max of the raw logits and apply the
  activation to one ``vocab``-sized row per text instead of to every token.

On this repo's 2-core CPU that is about 4x ST's ``encode_document`` with the
same vectors (bench/encode_throughput.py). Any other module stack (sum
pooling, extra modules) falls back to ST's own ``encode``.

An inference-free model (ST ``Router`` with a "query" route, e.g. a
token-weight table, and a "document" route, from ``lsr train`` with
``model.kind = "inference_free"``) encodes documents with the document
route (fast path included) and queries with ST's ``encode_query``. So
does any model with modules that tell queries from documents (the
compositions of :mod:`.compose`: echo decoder, focusing window budgets).
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from ..sparse import SparseVectors, Vocabulary
from .registry import ResolvedModel, resolve_model


class SpladeEncoder:
    """An :class:`lsr.encoders.Encoder` over an ST SparseEncoder: SPLADE, inference-free models and every
    composition (the echo decoder included)."""

    kind = "splade"

    def __init__(self, model, name: str = "", max_length: int = 256, batch_size: int = 32):
        """Wrap a loaded ``sentence_transformers.SparseEncoder``."""
        self.model = model
        self.name = name
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self.backend = "torch"
        self.threads: int | None = None  # torch intra-op threads while encoding (None: lsr's default, below)
        self.model.max_seq_length = self.max_length
        self.model.eval()
        self.inference_free = is_inference_free(model)
        self.task_aware = is_task_aware(model)  # Routers (inference-free) included
        first = self._modules("document")[0]
        self.vocab = Vocabulary.from_tokenizer(first.tokenizer)
        dim = getattr(first, "vocab_size", None)  # an LM head may be wider than its tokenizer (padded vocabularies)
        if dim and dim > self.vocab.size:
            self.vocab = Vocabulary.from_tokens(self.vocab.tokens + tuple(f"[unused_id_{i}]"
                                                                          for i in range(self.vocab.size, dim)))
        self._head_lock = threading.Lock()
        self._fast = self._fast_parts()

    # ------------------------------------------------------------------ load
    @classmethod
    def load(cls, name: str, max_length: int = 256, batch_size: int = 32, device: str | None = None,
             resolved: ResolvedModel | None = None) -> SpladeEncoder:
        resolved = resolved or resolve_model(name)
        return cls(load_sparse_encoder(resolved.path, max_length, device), name, max_length, batch_size)

    def save(self, path) -> None:
        """Save in sentence-transformers format (loadable by ``SparseEncoder(path)`` and by lsr)."""
        self.model.save(str(path))

    # -------------------------------------------------------------- encoding
    def token_length(self, text: str) -> int:
        """Tokens ``text`` has before truncation (special tokens included)."""
        return len(self._modules("document")[0].tokenizer(text, add_special_tokens=True)["input_ids"])

    def _modules(self, side: str) -> list:
        return side_modules(self.model, side)

    def encode_documents(self, texts: Sequence[str], **kw) -> SparseVectors:
        return self.encode(texts, **kw)

    def encode_queries(self, texts: Sequence[str], batch_size: int | None = None, progress=None) -> SparseVectors:
        if self.task_aware:
            texts = list(texts)
            if not texts:
                return SparseVectors(np.zeros(1, np.int64), [], [], self.vocab)
            return self._encode_st(texts, batch_size, progress, task="query")
        return self.encode(texts, batch_size=batch_size, progress=progress)

    def encode(self, texts: Sequence[str], batch_size: int | None = None, progress=None) -> SparseVectors:
        """Encode texts to SPLADE vectors, in input order.

        ``progress`` is an optional callable given the number of texts done
        after each batch (the CLI passes a progress bar's ``update``).
        """
        texts = list(texts)
        if not texts:
            return SparseVectors(np.zeros(1, np.int64), [], [], self.vocab)
        from .base import encode_distinct
        out = encode_distinct(texts, lambda t: self.encode(t, batch_size, progress), progress)  # each distinct text once
        if out is not None:
            return out
        from .backends import default_threads, set_torch_threads
        set_torch_threads(self.threads or (1 if len(texts) == 1 else default_threads()))
        if self._fast is None:
            return self._encode_st(texts, batch_size, progress)
        return self._encode_fast(texts, batch_size or self.batch_size, progress)

    def _encode_st(self, texts, batch_size, progress, task: str = "document") -> SparseVectors:
        from .backends import default_threads, set_torch_threads
        set_torch_threads(self.threads or (1 if len(texts) == 1 else default_threads()))
        # ST's encode returns a (batch, vocab) sparse tensor per call; chunks of
        # ``bs`` keep progress reporting and memory bounded.
        out = []
        bs = batch_size or self.batch_size
        encode = self.model.encode_query if task == "query" else self.model.encode_document
        for start in range(0, len(texts), bs):
            emb = encode(texts[start:start + bs], batch_size=bs, convert_to_sparse_tensor=True)
            out.append(SparseVectors.from_torch(emb, self.vocab))
            if progress:
                progress(len(texts[start:start + bs]))
        return SparseVectors.concat(out)

    # ------------------------------------------------------------- fast path
    def _fast_parts(self):
        """The pieces the fast path needs, or None if the stack is not plain max-pooled SPLADE."""
        import torch
        from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer
        mods = self._modules("document")
        if len(mods) != 2 or not isinstance(mods[0], Transformer) or not isinstance(mods[1], SpladePooling):
            return None
        if getattr(mods[0], "transformer_task", "fill-mask") != "fill-mask" or mods[1].pooling_strategy != "max":
            return None
        hf = mods[0].auto_model
        head = hf.get_output_embeddings()
        if not isinstance(head, torch.nn.Linear):
            return None
        parent_name, _, attr = next(n for n, m in hf.named_modules() if m is head).rpartition(".")
        return {
            "hf": hf,
            "head": head,
            "parent": hf.get_submodule(parent_name) if parent_name else hf,
            "attr": attr,
            "tokenizer": mods[0].tokenizer,
            "lower": bool(getattr(mods[0], "do_lower_case", False)),
            "double_log": mods[1].activation_function == "log1p_relu",
        }

    def _hidden_states(self, input_ids, attention_mask):
        """Run the MLM up to (not including) the vocabulary projection."""
        import torch
        f = self._fast
        with self._head_lock:
            setattr(f["parent"], f["attr"], torch.nn.Identity())
            try:
                return f["hf"](input_ids=input_ids, attention_mask=attention_mask).logits
            finally:
                setattr(f["parent"], f["attr"], f["head"])

    def _encode_fast(self, texts, batch_size, progress) -> SparseVectors:
        import torch
        f = self._fast
        if f["lower"]:
            texts = [t.lower() for t in texts]
        tok = f["tokenizer"](texts, truncation=True, max_length=self.max_length, add_special_tokens=True,
                             return_attention_mask=False)["input_ids"]
        lengths = np.fromiter((len(t) for t in tok), dtype=np.int64, count=len(tok))
        order = np.argsort(-lengths, kind="stable")
        device = f["head"].weight.device
        weight = f["head"].weight  # (vocab, hidden)
        bias = f["head"].bias
        pad_id = f["tokenizer"].pad_token_id or 0
        rows: list[tuple[np.ndarray, torch.Tensor]] = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                idx = order[start:start + batch_size]
                max_len = int(lengths[idx[0]])
                ids = torch.full((len(idx), max_len), pad_id, dtype=torch.long)
                mask = torch.zeros((len(idx), max_len), dtype=torch.long)
                for j, i in enumerate(idx):
                    ids[j, :lengths[i]] = torch.as_tensor(tok[i])
                    mask[j, :lengths[i]] = 1
                hidden = self._hidden_states(ids.to(device), mask.to(device))
                pooled = torch.empty((len(idx), weight.shape[0]), dtype=hidden.dtype, device=device)
                for j, i in enumerate(idx):
                    # (len_i, hidden) @ (hidden, vocab): real tokens only, max over tokens.
                    pooled[j] = (hidden[j, :lengths[i]] @ weight.T).amax(0)
                if bias is not None:
                    pooled += bias
                pooled = torch.log1p(torch.relu(pooled))
                if f["double_log"]:
                    pooled = torch.log1p(pooled)
                rows.append((idx, pooled.float().cpu()))
                if progress:
                    progress(len(idx))
        return _rows_to_csr(rows, len(texts), self.vocab)


def _rows_to_csr(rows, n: int, vocab: Vocabulary) -> SparseVectors:
    """Stack per-batch dense rows (length-sorted order) and restore input order."""
    import scipy.sparse as sp
    order = np.concatenate([idx for idx, _ in rows])
    stacked = sp.vstack([sp.csr_matrix(dense.numpy()) for _, dense in rows], format="csr")
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n)
    return SparseVectors.from_scipy(stacked[inverse], vocab)


def is_inference_free(model) -> bool:
    """Whether a loaded ST SparseEncoder is a Router with "query" and "document" routes."""
    from sentence_transformers.base.modules.router import Router
    mods = list(model)
    return len(mods) == 1 and isinstance(mods[0], Router) and {"query", "document"} <= set(mods[0].sub_modules)


def is_task_aware(model) -> bool:
    """Whether any module of the model behaves differently for queries ("task" in its forward kwargs)."""
    from sentence_transformers.base.modules.router import Router
    return any(isinstance(m, Router) or "task" in getattr(m, "forward_kwargs", ()) for m in model)


def side_modules(model, side: str) -> list:
    """The module stack that encodes ``side`` ("query" or "document"): a route
    of an inference-free model, else the whole (siamese) stack."""
    mods = list(model)
    return list(mods[0].sub_modules[side]) if is_inference_free(model) else mods


def recorded_max_length(path) -> int | None:
    """The max length a model folder saved by ``lsr train`` / ``lsr compose`` records (None: none recorded),
    so indexing it reproduces the figures it was selected on without a --max-length."""
    import json

    from ..layout import MODEL_SETTINGS
    p = Path(path) / MODEL_SETTINGS
    try:
        value = json.loads(p.read_text()).get("max_length")
    except (OSError, ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, int) and value > 0 else None


def record_max_length(folder, max_length: int) -> None:
    """Write the max length a saved model was trained / evaluated with (see :func:`recorded_max_length`)."""
    from ..atomic import write_json
    from ..layout import MODEL_SETTINGS
    write_json(Path(folder) / MODEL_SETTINGS, {"max_length": int(max_length)})


def load_sparse_encoder(path, max_length: int = 256, device: str | None = None):
    """A sentence-transformers SparseEncoder from a folder.

    An ST folder (with ``modules.json``) loads as saved; a bare HF masked-LM
    folder gets the standard SPLADE stack (fill-mask Transformer + max pooling).
    """
    from pathlib import Path

    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer
    path = Path(path)
    if (path / "modules.json").exists():
        return SparseEncoder(str(path), device=device, trust_remote_code=_only_lsr_code(path))
    transformer = Transformer(str(path), transformer_task="fill-mask", max_seq_length=max_length)
    return SparseEncoder(modules=[transformer, SpladePooling("max")], device=device)


def _only_lsr_code(path) -> bool:
    """Whether the ST folder's only non-ST module classes are lsr's own (lsr.encoders.modules).

    sentence-transformers refuses module classes outside its namespace unless
    ``trust_remote_code=True``. lsr's modules are installed code, not code from
    the folder, so we allow them; a folder that names any other class, or
    ships custom modelling code (``auto_map``), still needs the user's consent.
    """
    import json
    from pathlib import Path
    path = Path(path)
    types = [m.get("type", "") for m in json.loads((path / "modules.json").read_text())]
    if (path / "router_config.json").exists():
        types += list(json.loads((path / "router_config.json").read_text()).get("types", {}).values())
    custom = [t for t in types if not t.startswith("sentence_transformers.")]
    if not custom or not all(t.startswith("lsr.encoders.modules.") for t in custom):
        return False
    return not any("auto_map" in json.loads(c.read_text()) for c in path.glob("**/config.json"))
