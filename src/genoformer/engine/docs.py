"""Parameter descriptions that many public functions share, written once.

As scanpy's ``_docs.py``: a docstring line that holds only ``{name}`` is replaced by the
shared text of ``name``, indented as that line is::

    @shared_docs
    def train(..., out, device="auto"):
        \"\"\"Train a model.

        Parameters
        ----------
        {out}
        {device}
        \"\"\"

A line ``{name:Argument}`` fills the ``{}`` of ``name``'s text with ``Argument`` (the class
of a function's ``settings``, say).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

__all__ = ["SHARED", "shared_docs"]

F = TypeVar("F", bound=Callable)

SHARED: dict[str, str] = {
    "out": """out
    The run directory: ``manifest.json`` (command, arguments, versions, seed, timings,
    outputs, metrics) and every file the command writes; created if missing.""",
    "device": """device
    ``"auto"`` (cuda, then an Ascend npu, then Apple mps, then the CPU), or ``"cpu"``,
    ``"cuda"``, ``"cuda:1"``, ``"npu"``, ``"mps"``.""",
    "seed": """seed
    Seed of every random choice of the run (splits, initial weights, batches, masks).""",
    "resume": """resume
    Continue a killed run in ``out`` from its last complete checkpoint.""",
    "run_dir": """run_dir
    The directory of an earlier run that this command reads.""",
    "threads": """threads
    Threads of the compiled kernels (default: every core).""",
    "inputs_device": """device
    Where the inputs are put (the model that scores them must be there).""",
    "progress": """progress
    Draw progress bars on the terminal.""",
    "figure_path": """path
    Target path: an image suffix (``.png``, ``.pdf`` ...) gives way to each format, any
    other name gets the format appended (see :func:`~genoformer.engine.plots.save_figure`).""",
    "figure_title": """title
    Figure title.""",
    "formats": """formats
    File formats to write, e.g. ``("png", "pdf")``.""",
    "figures": """list of Path
    The files written, one per format.""",
    "page": """Path
    The self-contained HTML file written.""",
    # The sc pillar's verbs.
    "corpus_dataset": """corpus
    A corpus directory (``genoformer sc tokenize`` or Geneformer's tokenizer) or a
    ``datasets.Dataset`` with ``input_ids``.""",
    "corpus_vocabulary": """vocabulary, dictionaries
    The vocabulary the corpus was tokenized with (``"V1"``, ``"V2"``, a vocabulary file
    or a :class:`~genoformer.sc.vocabulary.GeneVocabulary`) and the folder of
    Geneformer's dictionaries. Default: the corpus manifest's vocabulary, else V2 when
    every cell starts with ``<cls>`` and ends with ``<eos>``, else V1.""",
    "dictionaries": """dictionaries
    Folder of Geneformer's pickled dictionaries, which ``"V1"``/``"V2"`` name (default:
    ``$GENOFORMER_GENEFORMER_DIR``, else the copy the package ships).""",
    "settings": """settings, **overrides
    The run's :class:`{}` (default: its defaults), and/or any of its
    fields by name, which replace the ones in ``settings``.""",
    # The seq pillar's readers.
    "lengths": """lengths, length
    What to do about sequences of unequal length: ``"keep"`` them, or see
    :func:`~genoformer.seq.data.harmonize_lengths` (``"error"``, ``"pad"``, ``"crop"``,
    ``"fit"``), to ``length``.""",
    "returns": """RunResult
    ``run_dir``, ``metrics`` (also in the manifest's ``results``) and ``outputs`` (every
    file written, by name).""",
}

_PLACEHOLDER = re.compile(r"^([ \t]*)\{(\w+)(?::(\w+))?\}[ \t]*$", re.MULTILINE)


def shared_docs(function: F) -> F:
    """Fill ``{name}`` lines of ``function``'s docstring from :data:`SHARED`."""

    def fill(match: re.Match) -> str:
        indent, name, argument = match.groups()
        if name not in SHARED:
            raise KeyError(f"{function.__qualname__}: no shared parameter text {name!r}")
        text = SHARED[name]
        if ("{}" in text) != (argument is not None):
            takes = "an argument" if "{}" in text else "no argument"
            raise KeyError(f"{function.__qualname__}: shared parameter text {name!r} takes {takes}")
        text = text.replace("{}", argument or "")
        return "\n".join(indent + line if line else line for line in text.splitlines())

    if function.__doc__:
        function.__doc__ = _PLACEHOLDER.sub(fill, function.__doc__)
    return function
