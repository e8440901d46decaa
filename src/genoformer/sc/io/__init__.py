"""Single-cell inputs: one module per format, one row reader, one entry point.

``open_cells`` (:mod:`~genoformer.sc.io.cells`) opens any input the sc pillar takes and
returns a :class:`~genoformer.sc.io.matrix.CellMatrix`. The names load on first use, so that
a tokenizer worker that imports only :mod:`~genoformer.sc.io.rows` starts without pandas.
"""

from genoformer._lazy import lazy_exports

_EXPORTS = {
    "open_cells": "genoformer.sc.io.cells",
    "CellMatrix": "genoformer.sc.io.matrix",
    "check_raw_counts": "genoformer.sc.io.matrix",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports("genoformer.sc.io", _EXPORTS)
