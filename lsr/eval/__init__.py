"""Metrics (ir-measures), BEIR conventions and TREC run files."""
from .metrics import (
                      DEFAULT_METRICS,
                      check_trec_ids,
                      evaluate,
                      parse_metrics,
                      read_trec_run,
                      run_from_results,
                      trec_run_lines,
                      write_trec_run,
)
from .run import DEPTH, QrelsCoverageWarning, evaluate_index

__all__ = ["evaluate", "evaluate_index", "parse_metrics", "run_from_results", "read_trec_run", "write_trec_run",
           "trec_run_lines", "check_trec_ids", "DEFAULT_METRICS", "DEPTH", "QrelsCoverageWarning"]
