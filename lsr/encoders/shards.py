"""Encode a corpus into Parquet shards, resumably.

``out/encode.json`` records the settings; ``out/shard-00000.parquet`` ...
hold ``shard_size`` documents each, in corpus order. A shard file appears
only once complete (written to ``.tmp``, then renamed), so after an
interruption the run resumes at the first missing shard. Resuming with other
settings (model, max length, shard size) is refused rather than mixing
vectors from two models in one folder.
"""
from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

from ..atomic import write_json
from ..errors import DataError
from ..layout import ENCODE_SETTINGS as SETTINGS
from ..layout import SHARD_GLOB, shard_name
from ..sparse import VectorWriter


def shard_paths(folder: Path) -> list[Path]:
    return sorted(Path(folder).glob(SHARD_GLOB))


def read_settings(folder: Path) -> dict | None:
    p = Path(folder) / SETTINGS
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{p}: corrupt settings file ({e})") from None


def _write_settings(folder: Path, settings: dict) -> None:
    write_json(folder / SETTINGS, settings)


def encode_corpus(dataset, encoder, out: Path, shard_size: int = 10000, chunk: int = 1024,
                  progress: bool = True, dataset_name: str | None = None) -> list[Path]:
    """Encode ``dataset.docs()`` with ``encoder`` into shards under ``out``; returns the shard paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {
        "model": encoder.name,
        "kind": encoder.kind,
        "max_length": encoder.max_length,
        "vocab_fingerprint": encoder.vocab.fingerprint,
        "dataset": dataset_name or dataset.name,
        "shard_size": shard_size,
    }
    old = read_settings(out)
    if old is not None:
        mismatched = [k for k in settings if old.get(k) != settings[k]]
        if mismatched:
            raise DataError(f"{out} holds vectors encoded with other settings "
                            f"({', '.join(f'{k}: {old.get(k)!r} vs {settings[k]!r}' for k in mismatched)}); "
                            f"use another output folder or delete it")
        if old.get("complete"):
            return shard_paths(out)
    _write_settings(out, settings)
    for stale in out.glob("*.tmp"):
        stale.unlink()  # a shard interrupted mid-write

    done = 0
    while (out / shard_name(done)).exists():
        done += 1
    docs = dataset.docs()
    skipped = sum(1 for _ in islice(docs, done * shard_size))
    total = dataset.docs_count()
    bar = _progress(progress, total, skipped)
    n_docs, shard = skipped, done
    try:
        while True:
            batch = list(islice(docs, shard_size))
            if not batch:
                break
            with VectorWriter(out / shard_name(shard), encoder.vocab,
                              {"model": encoder.name}) as writer:
                for start in range(0, len(batch), chunk):
                    part = batch[start:start + chunk]
                    vectors = encoder.encode_documents([d.full_text for d in part], progress=bar.update)
                    writer.write([d.doc_id for d in part], vectors)
            n_docs += len(batch)
            shard += 1
    finally:
        bar.close()
    if n_docs == 0:
        raise DataError(f"dataset {dataset.name!r} has no documents")
    _write_settings(out, {**settings, "complete": True, "docs": n_docs})
    return shard_paths(out)


def _progress(enabled: bool, total, initial):
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, unit="doc", desc="encoding", disable=not enabled,
                dynamic_ncols=True, mininterval=1.0)
