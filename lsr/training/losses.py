"""Sparsity regularisers that plug into sentence-transformers' ``SpladeLoss``.

sentence-transformers already has what the ranking side needs
(``SparseMarginMSELoss``, ``SparseDistillKLDivLoss`` over a candidate list,
``SparseMultipleNegativesRankingLoss`` = InfoNCE with in-batch and hard
negatives), ``SpladeLoss`` (ranking loss + separately weighted query and
document regularisers) and the quadratic warm-up of those weights
(``SpladeRegularizerWeightSchedulerCallback``). lsr adds the regularisers it
lacks, with the same interface (``compute_loss_from_embeddings``), so they
are passed as ``SpladeLoss(document_regularizer=..., query_regularizer=...)``:

* :class:`IDFFlopsLoss`: FLOPS with a per-token penalty ``1 / idf``
  (Geng, Ru, Yang 2024; derivation in docs/training.md);
* :class:`L1Loss`: mean L1 norm of the representations.

``flops`` and ``idf_flops`` are the same formulas as plain functions, for
tests and for reporting a model's FLOPS.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

IDF_EPS = 1e-3  # idf can be ~0 for a token in every document; 1/idf must stay finite
# The default floor of IDFFlopsLoss: no token is penalised more than plain
# FLOPS would penalise it. Without it, a small corpus gives the few tokens in
# nearly every document ("and", "." on nfcorpus: idf < 0.003) penalties of
# 1/idf^2 > 10^5, and at initialisation the regulariser outweighs the ranking
# loss by four orders of magnitude (docs/training.md, "IDF floor").
DEFAULT_IDF_FLOOR = 1.0


def flops(embeddings: Tensor) -> Tensor:
    """FLOPS regulariser (Paria et al. 2020): sum_j (mean_i |w_ij|)^2."""
    return torch.sum(torch.mean(torch.abs(embeddings), dim=0) ** 2)


def idf_flops(embeddings: Tensor, idf: Tensor, floor: float = IDF_EPS) -> Tensor:
    """IDF-aware FLOPS: sum_j (mean_i |w_ij| / max(idf_j, floor))^2."""
    return torch.sum((torch.mean(torch.abs(embeddings), dim=0) / idf.clamp_min(max(floor, IDF_EPS))) ** 2)


def l1(embeddings: Tensor) -> Tensor:
    """Mean over the batch of each representation's L1 norm."""
    return torch.mean(torch.sum(torch.abs(embeddings), dim=1))


class _Regularizer(nn.Module):
    """Common shape of a SpladeLoss regulariser: only ``compute_loss_from_embeddings`` is used."""

    def __init__(self, model=None, threshold: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.threshold = threshold

    def forward(self, sentence_features, labels=None):
        raise NotImplementedError(f"{type(self).__name__} is a regulariser: pass it to SpladeLoss")

    def _masked(self, embeddings: Tensor) -> Tensor:
        # Seismic-era "FLOPS with l0 masking": representations with at most
        # `threshold` non-zeros are not pushed further towards sparsity.
        if self.threshold is None:
            return embeddings
        keep = ((embeddings != 0).sum(dim=1) > self.threshold).to(embeddings.dtype)
        return embeddings * keep.unsqueeze(1)

    def get_config_dict(self) -> dict:
        return {"threshold": self.threshold}


class IDFFlopsLoss(_Regularizer):
    """IDF-aware FLOPS regulariser.

    ``idf`` is a vocabulary-sized vector (numpy or torch) from
    :mod:`lsr.training.idf` (computed from the training corpus, or loaded).
    Frequent tokens (low idf) are penalised more, rare ones less, so the
    sparsity pressure falls on the tokens that carry little ranking signal.
    ``idf_floor``: idf values below it count as the floor, so the penalty of
    one token is at most ``1 / idf_floor**2`` times plain FLOPS' (with the
    default 1.0: never more than plain FLOPS; tokens in more than about 37%
    of the documents all get exactly plain FLOPS, rarer ones less).
    """

    def __init__(self, model=None, idf=None, threshold: int | None = None,
                 idf_floor: float = DEFAULT_IDF_FLOOR) -> None:
        super().__init__(model, threshold)
        if not (idf_floor > 0 and np.isfinite(idf_floor)):
            raise ValueError(f"idf_floor must be a positive number, not {idf_floor!r}")
        self.idf_floor = float(idf_floor)
        if idf is None:
            raise ValueError("IDFFlopsLoss needs an idf vector (lsr.training.idf.idf_from_texts or load_idf)")
        idf = torch.as_tensor(np.asarray(idf, dtype=np.float32))
        if idf.ndim != 1 or not torch.isfinite(idf).all() or (idf < 0).any():
            raise ValueError("idf must be a 1-d vector of finite, non-negative values")
        self.register_buffer("idf", idf, persistent=False)

    def compute_loss_from_embeddings(self, embeddings: Tensor) -> Tensor:
        if embeddings.shape[-1] != self.idf.shape[0]:
            raise ValueError(f"embeddings have {embeddings.shape[-1]} dimensions, the idf vector "
                             f"{self.idf.shape[0]}")
        return idf_flops(self._masked(embeddings), self.idf.to(embeddings.device), self.idf_floor)

    def get_config_dict(self) -> dict:
        return {"threshold": self.threshold, "idf_floor": self.idf_floor}


class L1Loss(_Regularizer):
    """L1 regulariser: the mean over the batch of sum_j |w_ij|."""

    def compute_loss_from_embeddings(self, embeddings: Tensor) -> Tensor:
        return l1(self._masked(embeddings))


class FlopsLoss(_Regularizer):
    """Plain FLOPS with lsr's interface (sentence-transformers' FlopsLoss computes the same)."""

    def compute_loss_from_embeddings(self, embeddings: Tensor) -> Tensor:
        return flops(self._masked(embeddings))


REGULARIZERS = {"flops": FlopsLoss, "idf_flops": IDFFlopsLoss, "l1": L1Loss}


def quadratic_warmup(step: int, warmup_steps: int, weight: float) -> float:
    """The regulariser weight at ``step``: weight * min(1, step / warmup_steps)^2 (SPLADE's schedule)."""
    if warmup_steps <= 0:
        return float(weight)
    return float(weight) * min(1.0, step / warmup_steps) ** 2
