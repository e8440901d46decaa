"""seq: DNA sequence to function.

``genoformer.seq.train(...)`` is ``genoformer seq train ...`` (likewise ``evaluate``,
``predict``, ``interpret``); they load on first use, so that importing the package stays
quick.
"""

from importlib import import_module

_EXPORTS = {
    "train": "genoformer.seq.api",
    "evaluate": "genoformer.seq.api",
    "predict": "genoformer.seq.api",
    "interpret": "genoformer.seq.api",
    "SequenceData": "genoformer.seq.data",
    "load_sequences": "genoformer.seq.data",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'genoformer.seq' has no attribute {name!r}")
