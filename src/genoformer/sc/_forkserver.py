"""Imported once by the fork server the tokenizer's worker processes come from.

It loads the compiled kernels there, so every worker forked from the server starts with
them instead of loading them from numba's cache itself (a few tenths of a second each).
"""

from genoformer.sc.tokenizer import _warm_worker

_warm_worker()
