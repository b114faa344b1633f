"""The Seismic index's numba kernels, under their former single-module name.

The kernels live by concept, as in Seismic's Rust crate:

* ``seismic_build.py``: static pruning, document sketches, clustering of
  each inverted list into blocks;
* ``summaries.py``: the blocks' quantised summaries and their term-major
  layout (``DIR_SAMPLE``);
* ``seismic_search.py``: the search kernels (lists, k-NN refinement, the
  flat scan for selective filters).

This module only re-exports their public names, so that code written
against ``lsr.kernels.seismic`` keeps working; new code imports the module
it needs (importing any of them imports numba, which is slow to load).
"""
from .seismic_build import cluster_lists, prune_lists, top_terms
from .seismic_search import FILTER_MAX_TERMS, PREFETCH_DEPTH, filtered_scan, search_parallel, search_serial
from .summaries import DIR_SAMPLE, summaries_by_term, summary_fill, summary_select

__all__ = ["prune_lists", "top_terms", "cluster_lists", "summary_select", "summary_fill", "summaries_by_term",
           "DIR_SAMPLE", "FILTER_MAX_TERMS", "PREFETCH_DEPTH", "search_serial", "search_parallel", "filtered_scan"]
