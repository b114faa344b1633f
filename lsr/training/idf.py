"""Token IDF vectors: computed from a corpus with the model's tokenizer, or loaded.

The IDF source is always explicit: :func:`idf_from_texts` counts document
frequencies over the texts you give it (normally the training corpus) and
:func:`load_idf` reads a saved vector or an OpenSearch-style ``idf.json``
(``{"token": idf, ...}``). Formula: BM25's idf,
``log(1 + (N - df + 0.5) / (df + 0.5))``, always positive; a token never
seen gets the idf of df = 0.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np

from ..atomic import atomic_file, write_json
from ..errors import DataError


def bm25_idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    df = np.asarray(df, dtype=np.float64)
    return np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)


def document_frequencies(token_ids: Iterable[Iterable[int]], vocab_size: int) -> tuple[np.ndarray, int]:
    """(df per token, number of documents) from each document's token ids."""
    df = np.zeros(vocab_size, dtype=np.int64)
    n = 0
    for ids in token_ids:
        u = np.unique(np.asarray(list(ids), dtype=np.int64))
        if len(u) and (u[0] < 0 or u[-1] >= vocab_size):
            raise DataError(f"token id out of range 0..{vocab_size - 1} in document {n}")
        df[u] += 1
        n += 1
    return df, n


def idf_from_texts(texts: Iterable[str], tokenizer, batch_size: int = 1000, progress: bool = False) -> np.ndarray:
    """IDF of every vocabulary token over ``texts``, tokenised with ``tokenizer`` (special tokens excluded)."""
    from tqdm.auto import tqdm
    vocab_size = len(tokenizer)
    df = np.zeros(vocab_size, dtype=np.int64)
    n = 0
    batch: list[str] = []

    def flush():
        nonlocal n
        enc = tokenizer(batch, add_special_tokens=False, truncation=False)["input_ids"]
        part, m = document_frequencies(enc, vocab_size)
        df[:] += part
        n += m
        batch.clear()
    for text in tqdm(texts, desc="idf", unit="doc", disable=not progress):
        batch.append(text)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    if n == 0:
        raise DataError("no texts to compute idf from")
    return bm25_idf(df, n)


def save_idf(path, idf: np.ndarray, tokens: list[str] | None = None) -> None:
    """``.npy`` keeps the vector; ``.json`` writes ``{token: idf}`` (needs ``tokens``)."""
    path = Path(path)
    if path.suffix == ".json":
        if tokens is None or len(tokens) != len(idf):
            raise ValueError("saving idf as JSON needs one token per entry")
        write_json(path, {t: float(v) for t, v in zip(tokens, idf)}, indent=None)
    else:
        with atomic_file(path, "wb") as f:
            np.save(f, np.asarray(idf, dtype=np.float32), allow_pickle=False)


def load_idf(path, tokens: list[str] | None = None, default: float | None = None) -> np.ndarray:
    """Read an idf vector (``.npy``) or ``{token: idf}`` JSON mapped onto ``tokens`` (the vocabulary).

    Tokens missing from a JSON file get ``default`` (the file's largest idf
    when None: unseen means rare).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"idf file {path} does not exist")
    if path.suffix == ".json":
        try:
            table = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(table, dict) or not table:
            raise DataError(f"{path}: expected a non-empty {{token: idf}} object")
        if tokens is None:
            raise ValueError("loading idf JSON needs the vocabulary's tokens")
        fill = max(table.values()) if default is None else default
        idf = np.array([table.get(t, fill) for t in tokens], dtype=np.float32)
    else:
        try:
            idf = np.load(path, allow_pickle=False).astype(np.float32)
        except ValueError as e:
            raise DataError(f"{path}: unreadable idf vector ({e})") from None
    if idf.ndim != 1 or not np.isfinite(idf).all() or (idf < 0).any():
        raise DataError(f"{path}: idf must be a 1-d vector of finite, non-negative values")
    return idf
