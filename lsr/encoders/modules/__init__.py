"""sentence-transformers modules lsr adds (imported by ST by class path when a saved model loads)."""
from .decoder import EchoDecoder
from .prosper import FocusingWindow, LiteralResidual
from .task_transformer import TaskTransformer
from .term_weighting import MLPTermWeighting

__all__ = ["EchoDecoder", "FocusingWindow", "LiteralResidual", "MLPTermWeighting", "TaskTransformer"]
