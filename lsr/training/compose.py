"""Build an encoder composed by name (:mod:`lsr.encoders.compose`) and save it as a model folder.

A composition with an IDF side (``qidf_*``, ``*_didf``) needs an IDF table;
:func:`compose_model` computes one from a corpus with the backbone's
tokenizer (:func:`lsr.training.idf.idf_from_texts`). The saved folder is an
ordinary sentence-transformers folder: index with ``--model DIR`` or train
it with ``lsr train``.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import LsrError, ModelError


def compose_model(name: str, output, idf_corpus: str | None = None, split: str | None = None,
                  max_length: int = 256, query_budget: int = 64, document_budget: int = 256,
                  overwrite: bool = False, progress: bool = False) -> Path:
    """Build the composition ``name`` (e.g. ``qidf_dmlm``, ``echo@smollm2-135m``) and save it to ``output``.

    ``idf_corpus`` (a dataset: ir_datasets id, BEIR folder or corpus file)
    gives the IDF table; ``query_budget`` / ``document_budget`` are the terms
    echo / PROSPER keep per text (0: all). The folder is written atomically:
    an interrupted save leaves no half model. Raises :class:`ModelError` for a
    name that is not a composition and :class:`LsrError` for an existing,
    non-empty ``output`` without ``overwrite``.
    """
    from ..encoders.compose import build, parse_name
    from ..encoders.registry import resolve_model
    output = Path(output)
    spec = parse_name(name)
    if spec is None:
        raise ModelError(f"{name!r} is not a composition name (see `lsr models`)")
    from ..atomic import check_replaceable
    from ..layout import MODEL_SETTINGS
    if idf_corpus:
        from ..retrieval.build import refuse_overlap
        refuse_overlap(output, idf_corpus, LsrError)  # replacing it would delete the corpus being read
    if overwrite:  # before any work: --overwrite replaces a model lsr wrote, never someone's folder
        check_replaceable(output, MODEL_SETTINGS, LsrError)
    if output.exists() and (not output.is_dir() or any(output.iterdir())) and not overwrite:
        raise LsrError(f"{output} exists and is not empty; pass overwrite=True (--overwrite) to replace it")
    idf = None
    if idf_corpus:
        from transformers import AutoTokenizer

        from ..data import load_dataset
        from .idf import idf_from_texts
        tokenizer = AutoTokenizer.from_pretrained(str(resolve_model(spec.base).path))
        idf = idf_from_texts((d.full_text for d in load_dataset(idf_corpus, split=split).docs()), tokenizer,
                             progress=progress)
    model = build(spec, idf=idf, max_length=max_length, query_k=query_budget, document_k=document_budget)
    from ..atomic import atomic_dir
    from ..encoders.splade import record_max_length
    with atomic_dir(output, overwrite=True, replaces=MODEL_SETTINGS) as tmp:
        model.save(str(tmp))
        record_max_length(tmp, max_length)
    return output
