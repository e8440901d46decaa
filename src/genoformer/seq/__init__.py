"""seq: DNA sequence to function.

``genoformer.seq.train(...)`` is ``genoformer seq train ...`` (likewise ``evaluate``,
``predict``, ``interpret``); ``SeqTrainSettings`` groups the settings of ``train``. They
load on first use, so that importing the package stays quick.
"""

from genoformer._lazy import lazy_exports

_EXPORTS = {
    "train": "genoformer.seq.api",
    "evaluate": "genoformer.seq.api",
    "predict": "genoformer.seq.api",
    "interpret": "genoformer.seq.api",
    "SeqTrainSettings": "genoformer.seq.api",
    "SequenceData": "genoformer.seq.data",
    "load_sequences": "genoformer.seq.io.load",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports("genoformer.seq", _EXPORTS)
