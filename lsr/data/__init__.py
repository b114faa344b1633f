"""Corpora, queries and qrels from ir_datasets ids, BEIR folders or files."""
from .datasets import BeirFolder, Dataset, FileDataset, IrDatasetsDataset, load_dataset
from .records import Doc, Qrels, Query

__all__ = ["load_dataset", "Dataset", "BeirFolder", "FileDataset", "IrDatasetsDataset", "Doc", "Query", "Qrels"]
