"""Term weighting without expansion: the unified framework's "MLP" encoder
(Nguyen et al., ECIR 2023; as in DeepImpact, uniCOIL, EPIC's query side).

Each input token gets one weight from its contextual hidden state,
``log1p(relu(w . h_t + b))``; a vector holds only the input's own tokens
(max over repeated tokens). The head starts with zero weights and bias 1,
so before training every input token weighs log(2): a binary encoder that
training then learns to weight.
"""
from __future__ import annotations

import torch
from sentence_transformers.base.modules.module import Module

from .weights import ConfigAndWeights


class MLPTermWeighting(ConfigAndWeights, Module):
    config_keys = ["hidden_size", "vocab_size", "special_ids"]
    config_file_name = "lsr_term_weighting.json"

    def __init__(self, hidden_size: int, vocab_size: int, special_ids=()):
        super().__init__()
        self.hidden_size, self.vocab_size = int(hidden_size), int(vocab_size)
        self.special_ids = sorted(int(i) for i in special_ids)
        self.linear = torch.nn.Linear(self.hidden_size, 1)
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.ones_(self.linear.bias)

    def forward(self, features: dict, **kwargs) -> dict:
        h = features["token_embeddings"]
        ids = features["input_ids"]
        mask = features["attention_mask"].bool()
        for s in self.special_ids:
            mask = mask & (ids != s)
        w = torch.log1p(torch.relu(self.linear(h).squeeze(-1))) * mask.to(h.dtype)
        out = torch.zeros((ids.shape[0], self.vocab_size), dtype=w.dtype, device=w.device)
        features["sentence_embedding"] = out.scatter_reduce(1, ids, w, reduce="amax", include_self=True)
        return features

    def get_sentence_embedding_dimension(self) -> int:
        return self.vocab_size
