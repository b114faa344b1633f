"""Training sparse encoders: regularisers, IDF, ensemble teachers (docs/training.md).

Imports torch only through :mod:`lsr.training.losses`; the rest is numpy.
"""
from .idf import bm25_idf, idf_from_texts, load_idf, save_idf
from .teachers import BM25Teacher, DenseTeacher, SparseTeacher, TeacherCache, ensemble, normalise

__all__ = ["bm25_idf", "idf_from_texts", "load_idf", "save_idf", "normalise", "ensemble", "TeacherCache",
           "DenseTeacher", "SparseTeacher", "BM25Teacher"]
