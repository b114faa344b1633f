"""PROSPER's two components (Song et al., "LLMs as Sparse Retrievers: A
Framework for First-Stage Product Search", 2025), as sentence-transformers modules.

* ``LiteralResidual`` (literal residual network): an expansion model may
  under-weight the input's own words (brand names, model numbers, rare
  terms). A small head reads each input token's representation and adds a
  non-negative compensation to that token's weight, so a literal term is
  never weighted lower than the expansion put it and never lost.
* ``FocusingWindow`` (lexical focusing window): keep the top ``k`` terms,
  with separate query and document budgets. Early in training a very
  large vocabulary (49k for SmolLM2) gives dense, noisy vectors that are
  hard to learn from; the window starts wide (``start_k``) and narrows
  linearly to the budgets over ``focus_steps`` training steps: coarse to
  fine. At inference the budgets apply as they are (a hard bound on
  non-zeros, which the index's memory and speed depend on).

Only the paper's abstract was readable here; the exact parameterisation
(softplus of a linear read-out; linear narrowing) is ours.
"""
from __future__ import annotations

import torch
from sentence_transformers.base.modules.module import Module

from .weights import ConfigAndWeights


class LiteralResidual(ConfigAndWeights, Module):
    """weight[v] += max over the input's tokens t with id v of softplus(w . x_t + b).

    ``x_t`` is the previous module's per-token output (``token_embeddings``:
    hidden states of a decoder, MLM logits of a BERT stack), ``in_features``
    its width. Positions pooled by the encoder (``pool_mask``: the echo's
    second copy) or else all attended positions count as literal, except the
    ``special_ids`` ([CLS], [SEP], padding ...).
    """

    config_keys = ["in_features", "special_ids", "init_bias"]
    config_file_name = "lsr_literal_residual.json"

    def __init__(self, in_features: int, special_ids=(), init_bias: float = -2.0):
        super().__init__()
        self.in_features = int(in_features)
        self.special_ids = sorted(int(i) for i in special_ids)
        self.init_bias = float(init_bias)
        self.linear = torch.nn.Linear(self.in_features, 1)
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.constant_(self.linear.bias, self.init_bias)

    def literal_mask(self, features) -> torch.Tensor:
        ids = features["input_ids"]
        mask = features.get("pool_mask")
        mask = features["attention_mask"].bool() if mask is None else mask.bool()
        for s in self.special_ids:
            mask = mask & (ids != s)
        return mask

    def forward(self, features: dict, **kwargs) -> dict:
        emb = features["sentence_embedding"]
        x = features["token_embeddings"]
        ids = features["input_ids"]
        comp = torch.nn.functional.softplus(self.linear(x.to(self.linear.weight.dtype)).squeeze(-1)).to(emb.dtype)
        comp = comp * self.literal_mask(features).to(emb.dtype)
        boost = torch.zeros_like(emb).scatter_reduce(1, ids, comp, reduce="amax", include_self=True)
        features["sentence_embedding"] = emb + boost
        return features


class FocusingWindow(Module):
    """Top-k per vector with a query and a document budget (0 = no limit);
    during training the window narrows from ``start_k`` to the budget."""

    config_keys = ["query_k", "document_k", "start_k", "focus_steps"]
    config_file_name = "lsr_focusing_window.json"
    forward_kwargs = {"task"}

    def __init__(self, query_k: int = 64, document_k: int = 256, start_k: int = 0, focus_steps: int = 0):
        super().__init__()
        self.query_k, self.document_k = int(query_k), int(document_k)
        self.start_k, self.focus_steps = int(start_k), int(focus_steps)
        if min(self.query_k, self.document_k, self.start_k, self.focus_steps) < 0:
            raise ValueError("focusing window budgets and steps must be >= 0")
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long), persistent=False)

    def budget(self, task: str | None) -> int:
        k = self.query_k if task == "query" else self.document_k
        if not self.training or not self.start_k or not self.focus_steps or not k:
            return k
        frac = min(1.0, float(self.steps_done) / self.focus_steps)
        return max(k, int(round(self.start_k + (k - self.start_k) * frac)))

    def forward(self, features: dict, task: str | None = None, **kwargs) -> dict:
        task = task or features.get("task")
        emb = features["sentence_embedding"]
        k = self.budget(task)
        if self.training and task != "query":
            self.steps_done += 1  # one step = one document batch
        if k and k < emb.shape[-1]:
            top = emb.topk(k, dim=-1)
            features["sentence_embedding"] = torch.zeros_like(emb).scatter(-1, top.indices, top.values)
        return features

    def save(self, output_path: str, *args, **kwargs) -> None:
        self.save_config(output_path)
