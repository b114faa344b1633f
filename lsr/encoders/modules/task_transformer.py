"""sentence-transformers' Transformer that records the task in its features.

Modules after it that behave differently for queries and documents (the
focusing window's budgets) read ``features["task"]``: during training the
loss calls the model without the ``task`` argument that ``encode_query``
passes, but the data collator preprocesses each column with its task.
"""
from __future__ import annotations

from sentence_transformers.base.modules.transformer import Transformer


class TaskTransformer(Transformer):
    def preprocess(self, inputs, prompt=None, **kwargs):
        out = super().preprocess(inputs, prompt=prompt, **kwargs)
        out["task"] = kwargs.get("task")
        return out
