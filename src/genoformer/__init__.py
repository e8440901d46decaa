"""genoformer: deep learning on genomic data (gwas, sc, seq) over one shared engine."""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # ``genoformer.report(...)``: the report package is itself callable (see its docstring);
    # importing it on first use keeps ``import genoformer`` light.
    if name == "report":
        from importlib import import_module

        return import_module("genoformer.report")
    raise AttributeError(f"module 'genoformer' has no attribute {name!r}")
