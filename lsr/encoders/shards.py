"""Encode a corpus into Parquet shards, resumably.

``out/encode.json`` records the settings; ``out/shard-00000.parquet`` ...
hold ``shard_size`` documents each, in corpus order. A shard file appears
only once complete (written to ``.tmp``, then renamed), so after an
interruption the run resumes at the first missing shard.

A resume is keyed on content: the settings record the corpus's and the
model's fingerprints (:mod:`.fingerprint`), and a run whose corpus, model or
settings differ from the folder's never reuses its vectors. The settings also
record the inference backend (:mod:`.backends`; a folder written before
backends were recorded was encoded with torch): onnx-int8 vectors are not
torch's, so a run with another backend does not resume one either. ``lsr index``
(``restart=True``: the ``.partial`` folder is its own scratch) removes them and
starts over, saying so; ``lsr encode`` (a folder the user named) refuses.
Every error of the run names the folder.
"""
from __future__ import annotations

import json
import logging
from itertools import islice
from pathlib import Path

from ..atomic import write_json, writer_lock
from ..errors import DataError, LsrError
from ..layout import ENCODE_SETTINGS as SETTINGS
from ..layout import SHARD_GLOB, shard_name
from ..sparse import VectorWriter

# What a resumed run must share with the folder (its dataset *name* may differ: content decides).
RESUME_KEYS = ("model", "kind", "max_length", "vocab_fingerprint", "shard_size", "corpus_fingerprint",
               "model_fingerprint", "backend")
_WHAT = {"corpus_fingerprint": "the corpus content", "model_fingerprint": "the model's files"}


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


def recorded_backend(settings: dict) -> str | None:
    """The backend a folder's vectors were encoded with: None for BM25 (no model), "torch" when unrecorded."""
    return None if settings.get("kind") == "bm25" else settings.get("backend", "torch")


def _write_settings(folder: Path, settings: dict) -> None:
    write_json(folder / SETTINGS, settings)


def encode_corpus(dataset, encoder, out: Path, shard_size: int = 10000, chunk: int = 1024,
                  progress: bool = True, dataset_name: str | None = None, restart: bool = False,
                  model_fingerprint: str | None = None) -> list[Path]:
    """Encode ``dataset.docs()`` with ``encoder`` into shards under ``out``; returns the shard paths.

    Resumes a folder encoded from the same content with the same settings; one that differs is
    restarted (``restart``, with a warning) or refused (DataError). ``model_fingerprint`` defaults to
    the fingerprint of the model ``encoder.name`` names. A second writer of ``out`` gets a DataError.
    """
    out = Path(out)
    with writer_lock(out, DataError):
        return _encode_locked(dataset, encoder, out, shard_size, chunk, progress, dataset_name, restart,
                              model_fingerprint)


def _encoder_fingerprint(encoder) -> str | None:
    from .fingerprint import model_fingerprint
    try:
        return model_fingerprint(encoder.name)
    except LsrError:
        return None  # an encoder built in Python under a free-form name: its settings still have to match


def _encode_locked(dataset, encoder, out, shard_size, chunk, progress, dataset_name, restart, model_fp):
    from .fingerprint import dataset_fingerprint
    settings = {
        "model": encoder.name,
        "kind": encoder.kind,
        "max_length": encoder.max_length,
        "vocab_fingerprint": encoder.vocab.fingerprint,
        "dataset": dataset_name or dataset.name,
        "shard_size": shard_size,
        "corpus_fingerprint": dataset_fingerprint(dataset),
        "model_fingerprint": model_fp or _encoder_fingerprint(encoder),
    }
    if encoder.kind != "bm25":  # BM25 runs no model; a neural encoder without the attribute is a torch one
        settings["backend"] = getattr(encoder, "backend", None) or "torch"
    old = read_settings(out)
    if old is not None:
        then, now = {**old, "backend": recorded_backend(old)}, {**settings, "backend": recorded_backend(settings)}
        mismatched = [k for k in RESUME_KEYS if then.get(k) != now[k]]
        if mismatched:
            what = ", ".join(_WHAT.get(k, f"{k} ({then.get(k)!r} vs {now[k]!r})") for k in mismatched)
            if not restart:
                raise DataError(f"{out} holds vectors encoded from other content or settings ({what} differ); "
                                "use another output folder or delete it")
            logging.getLogger("lsr").warning("%s: %s changed since this encoding began; its vectors are removed "
                                             "and the encoding restarts", out, what)
            for stale in shard_paths(out) + [out / SETTINGS]:
                stale.unlink(missing_ok=True)
            old = None
        elif old.get("complete"):
            return shard_paths(out)
    out.mkdir(parents=True, exist_ok=True)
    _write_settings(out, settings)
    for stale in out.glob("*.tmp"):
        stale.unlink()  # a shard interrupted mid-write
    done = 0
    while (out / shard_name(done)).exists():
        done += 1
    where = f"{out} (resumed at shard {done})" if done else str(out)
    try:
        n_docs = _encode_shards(dataset, encoder, out, shard_size, chunk, progress, done)
    except LsrError as e:
        raise type(e)(f"{e} [while encoding into {where}; rerun to resume, or delete it to start over]") from e
    except OSError as e:
        raise DataError(f"writing the encoded vectors to {where} failed ({e}); free the space or fix the "
                        "permissions, then rerun to resume") from e
    except Exception as e:
        if hasattr(e, "add_note"):  # Python 3.11+: the traceback names the folder too
            e.add_note(f"while encoding into {where}")
        raise
    if n_docs == 0:
        raise DataError(f"dataset {dataset.name!r} has no documents")
    _write_settings(out, {**settings, "complete": True, "docs": n_docs})
    return shard_paths(out)


def _encode_shards(dataset, encoder, out: Path, shard_size: int, chunk: int, progress: bool, done: int) -> int:
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
            # A copy of a document met in an earlier chunk of this shard takes that vector: float32 kernels
            # round with the batch's padding, so encoding it again could score it 1e-6 off its twin.
            first: dict[str, int] = {}
            origin = [first.setdefault(d.full_text, i) for i, d in enumerate(batch)]
            twins = {o for i, o in enumerate(origin) if o != i}
            kept = {}
            with VectorWriter(out / shard_name(shard), encoder.vocab,
                              {"model": encoder.name}) as writer:
                for start in range(0, len(batch), chunk):
                    part = batch[start:start + chunk]
                    texts = [d.full_text for d in part]
                    vectors = encoder.encode_documents(texts, progress=bar.update)
                    if any(origin[start + j] < start for j in range(len(part))):
                        vectors = type(vectors).concat([kept[origin[start + j]] if origin[start + j] < start
                                                        else vectors[j:j + 1] for j in range(len(part))])
                    kept.update({start + j: vectors[j:j + 1] for j in range(len(part)) if start + j in twins})
                    # A neural encoder gives an empty text terms of its own (splade-tiny: 'is', 'means', ...):
                    # an empty document must match nothing, so its row is emptied.
                    vectors = vectors.clear_rows([i for i, t in enumerate(texts) if not t.strip()])
                    writer.write([d.doc_id for d in part], vectors)
            n_docs += len(batch)
            shard += 1
    finally:
        bar.close()
    return n_docs


def _progress(enabled: bool, total, initial):
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, unit="doc", desc="encoding", disable=not enabled,
                dynamic_ncols=True, mininterval=1.0)
