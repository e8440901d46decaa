"""Gene vocabularies: token ids, gene medians and id maps, Geneformer's and our own.

Geneformer ships four pickled dictionaries per model generation: token ids, non-zero gene
medians, gene symbol to Ensembl id, and an Ensembl mapping that collapses ids and symbols
onto the Ensembl id used in the vocabulary. :class:`GeneVocabulary` holds all four with the
special tokens and the model input size they go with; :meth:`GeneVocabulary.geneformer`
reads Geneformer's pickles through a restricted unpickler, and :meth:`GeneVocabulary.save`
/ :meth:`GeneVocabulary.load` use our own plain format: one JSON file.

Why one JSON file: it is written and renamed atomically in one step, a person can read and
diff it, and it loads faster than the pickles (the V2 vocabulary, 10.6 MB with the
173,697-entry mapping: 0.28 s against 0.6 s for the four pickles, on 2 CPU cores). A
directory of Parquet tables loads no faster once its columns are turned back into
dictionaries, and cannot be replaced atomically.
"""

from __future__ import annotations

import json
import lzma
import os
import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

try:  # numpy 2
    from numpy._core.multiarray import scalar as _numpy_scalar
except ImportError:  # numpy 1.26
    from numpy.core.multiarray import scalar as _numpy_scalar

from genoformer.engine.errors import InputError, cli_option, command_line, option
from genoformer.engine.runs import write_text

ENV_DIR = "GENOFORMER_GENEFORMER_DIR"
# Geneformer's dictionaries as the package ships them (our format, xz; see NOTICE there).
PACKAGED = Path(__file__).with_name("geneformer")
FORMAT = "genoformer.gene_vocabulary"
FORMAT_VERSION = 1

# The four dictionaries of one Geneformer release, by the field they fill.
_PICKLES = {
    "token_ids": "token_dictionary_{name}.pkl",
    "medians": "gene_median_dictionary_{name}.pkl",
    "symbol_to_id": "gene_name_id_dict_{name}.pkl",
    "id_mapping": "ensembl_mapping_dict_{name}.pkl",
}
_RELEASES = {
    "V1": {"name": "gc30M", "input_size": 2048, "special": ("pad", "mask")},
    "V2": {"name": "gc104M", "input_size": 4096, "special": ("pad", "mask", "cls", "eos")},
}
#: The file in a corpus that keeps a copy of the vocabulary it was tokenized with, when that
#: is not one of Geneformer's (those are found by their names): the corpus carries its
#: vocabulary to `sc pretrain` and `sc embed`.
CORPUS_COPY = "vocabulary.json"
# Geneformer's repository keeps the V1 files in this sub-folder.
_REPO_SUBDIRS = {"gc30M": "gene_dictionaries_30m"}


# ---------------------------------------------------------------------------------------
# Restricted unpickling
# ---------------------------------------------------------------------------------------


class _Refused(pickle.UnpicklingError):
    """The pickle references something that is not plain data."""


# Only plain numeric scalar types may be rebuilt: an object or structured dtype would let a
# pickle smuggle arbitrary objects through numpy's scalar constructor.
_SCALAR_DTYPES = frozenset(
    np.dtype(code).newbyteorder(order)
    for code in ("?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8")
    for order in ("<", ">")
)


def _checked_dtype(dtype: object) -> np.dtype:
    if not isinstance(dtype, np.dtype) or dtype not in _SCALAR_DTYPES or dtype.metadata:
        raise _Refused(f"numpy dtype {str(dtype)!r}")
    return dtype


def _dtype(spec: object, align: object = False, copy: object = False) -> np.dtype:
    if not isinstance(spec, str):
        raise _Refused(f"numpy dtype {spec!r}")
    return _checked_dtype(np.dtype(spec, bool(align), bool(copy)))


def _scalar(dtype: object, data: object = None) -> np.generic:
    # The dtype was rebuilt by _dtype, but BUILD may have changed it since: check again.
    if not isinstance(data, bytes):
        raise pickle.UnpicklingError("numpy scalar without its bytes")
    return _numpy_scalar(_checked_dtype(dtype), data)  # type: ignore[arg-type]


# numpy 1 pickles name numpy.core, numpy 2 pickles numpy._core; both rebuild the same way.
_ALLOWED_GLOBALS = {
    ("numpy", "dtype"): _dtype,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds only builtin containers, str and numbers, and numpy's numeric scalars."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused(f"persistent id {pid!r}")


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars made plain Python; anything else not allowed raises."""
    # numpy first: np.float64 is also a Python float, and would otherwise stay numpy.
    if isinstance(value, (np.number, np.bool_)):
        return value.item()
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    raise TypeError(type(value).__name__)


def load_pickle_dict(path: str | os.PathLike) -> dict:
    """Load a pickled dictionary that holds only plain data, refusing anything else.

    Accepts dicts, lists and tuples of str, int, float, bool, None and numpy numeric
    scalars (returned as plain Python ``int``/``float``/``bool``). A pickle that names any
    other global (a function, a class) is refused before that global is looked up.

    Raises
    ------
    InputError
        The file is missing, is not a pickle, is not a dict, or references anything else.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            loaded = _RestrictedUnpickler(handle).load()
    except FileNotFoundError:
        raise InputError("file not found", file=path) from None
    except _Refused as error:
        raise InputError(
            f"refused to unpickle: the file references {error}, not plain data",
            file=path,
            fix="load only Geneformer's dictionary pickles, or save the data as JSON",
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as error:
        raise InputError(f"not a readable dictionary pickle ({error})", file=path) from None
    if not isinstance(loaded, dict):
        raise InputError(f"holds a {type(loaded).__name__}, expected a dict", file=path)
    try:
        return _plain(loaded)
    except TypeError as error:
        raise InputError(f"holds a {error}, expected only str and numbers", file=path) from None
    except RecursionError:
        raise InputError("nested too deeply for a dictionary of genes", file=path) from None


# ---------------------------------------------------------------------------------------
# The vocabulary
# ---------------------------------------------------------------------------------------


def _special_tokens(roles: Iterable[str]) -> dict[str, str]:
    return {role: f"<{role}>" for role in roles}


def _special_id(role: str) -> property:
    """A :class:`GeneVocabulary` property: the token id of its ``role`` special token."""

    def token_id(vocabulary: GeneVocabulary) -> int | None:
        token = vocabulary.special_tokens.get(role)
        return None if token is None else vocabulary.token_ids[token]

    return property(token_id, doc=f"Token id of the ``{role}`` token (None: there is none).")


@dataclass
class GeneVocabulary:
    """Token ids, gene medians and id maps of one model generation.

    Attributes
    ----------
    token_ids
        Ensembl id (and special token such as ``"<pad>"``) to token id.
    medians
        Ensembl id to the gene's non-zero median of normalised expression.
    symbol_to_id
        Gene symbol to Ensembl id.
    id_mapping
        Any id or symbol to the Ensembl id used in the vocabulary (Geneformer's
        ``ensembl_mapping_dict``); empty means identity.
    input_size
        The model's input size: 2,048 for V1 models, 4,096 for V2.
    name
        ``"gc30M"``, ``"gc104M"`` or the user's name.
    special_tokens
        Role (``pad``, ``mask``, ``cls``, ``eos``) to token string.
    """

    token_ids: dict[str, int]
    medians: dict[str, float]
    symbol_to_id: dict[str, str] = field(default_factory=dict)
    id_mapping: dict[str, str] = field(default_factory=dict)
    input_size: int = 4096
    name: str = "custom"
    special_tokens: dict[str, str] = field(default_factory=lambda: _special_tokens(("pad", "mask")))

    def __post_init__(self) -> None:
        _check(self)

    # -- special tokens -------------------------------------------------------------------

    pad_id = _special_id("pad")
    mask_id = _special_id("mask")
    cls_id = _special_id("cls")
    eos_id = _special_id("eos")

    @property
    def has_cls_eos(self) -> bool:
        """Whether cells start with ``<cls>`` and end with ``<eos>`` (V2 models)."""
        return self.cls_id is not None and self.eos_id is not None

    def gene_ids(self) -> list[str]:
        """Ensembl ids that are tokens and have a median (the genes a cell can hold),
        in token id order."""
        special = set(self.special_tokens.values())
        genes = [g for g in self.token_ids if g not in special and g in self.medians]
        return sorted(genes, key=self.token_ids.__getitem__)

    def gene_token(self, name: str) -> int | None:
        """The token of a gene named by Ensembl id (mapped as the tokenizer maps it) or by
        symbol (exact, else upper case); None when the vocabulary has no such gene."""
        key = str(name).strip()
        gene = self.id_mapping.get(key.upper(), key.upper())
        if gene not in self.token_ids:
            symbol = self.symbol_to_id.get(key) or self.symbol_to_id.get(key.upper())
            gene = self.id_mapping.get(symbol, symbol) if symbol else None
        if gene is None or gene not in self.token_ids or gene in self.special_tokens.values():
            return None
        return int(self.token_ids[gene])

    def __len__(self) -> int:
        return len(self.token_ids)

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def geneformer(
        cls, version: Literal["V1", "V2"] = "V2", directory: str | os.PathLike | None = None
    ) -> GeneVocabulary:
        """Geneformer's own dictionaries: V1 (gc30M, input size 2,048, no ``<cls>``/
        ``<eos>``) or V2 (gc104M, 4,096, with ``<cls>`` and ``<eos>``).

        Parameters
        ----------
        version
            ``"V1"`` or ``"V2"`` (or the release name, ``"gc30M"``/``"gc104M"``).
        directory
            Folder holding the four pickles, or their parent (``gc30M/``, ``gc104M/``
            sub-folders, or Geneformer's repository layout). Default: the environment
            variable ``GENOFORMER_GENEFORMER_DIR``.
        """
        release = _release(version)
        name = release["name"]
        folder = _pickle_folder(name, directory)
        loaded = {
            key: load_pickle_dict(folder / f.format(name=name)) for key, f in _PICKLES.items()
        }
        try:
            return cls(
                **loaded,
                input_size=release["input_size"],
                name=name,
                special_tokens=_special_tokens(release["special"]),
            )
        except InputError as error:
            raise InputError(error.problem, file=folder, where=error.where, fix=error.fix) from None

    @classmethod
    def from_medians(
        cls,
        medians: dict[str, float],
        *,
        name: str,
        input_size: int = 4096,
        special: Iterable[str] = ("pad", "mask", "cls", "eos"),
        symbol_to_id: dict[str, str] | None = None,
        id_mapping: dict[str, str] | None = None,
    ) -> GeneVocabulary:
        """A new vocabulary for genes with medians.

        Token ids: the special tokens first, ``0..k-1`` in the order of ``special`` (so
        ``<pad>`` is 0 and ``<mask>`` 1, as in Geneformer), then the genes sorted by
        Ensembl id, so the same genes always get the same ids.
        """
        roles = tuple(special)
        special_tokens = _special_tokens(roles)
        token_ids = {token: i for i, token in enumerate(special_tokens.values())}
        clashes = sorted(set(medians) & set(token_ids))
        if clashes:
            raise InputError(f"gene id {clashes[0]!r} is also a special token")
        for offset, gene in enumerate(sorted(medians)):
            token_ids[gene] = len(special_tokens) + offset
        return cls(
            token_ids=token_ids,
            medians={gene: float(medians[gene]) for gene in sorted(medians)},
            symbol_to_id=dict(symbol_to_id or {}),
            id_mapping=dict(id_mapping or {}),
            input_size=input_size,
            name=name,
            special_tokens=special_tokens,
        )

    @classmethod
    def packaged(cls, version: Literal["V1", "V2"] = "V2") -> GeneVocabulary:
        """Geneformer's V1 or V2 dictionaries as genoformer ships them: the same keys and
        values as :meth:`geneformer` reads from the pickles, with no folder to set."""
        return cls.load(PACKAGED / f"{_release(version)['name']}.json.xz")

    # -- our own format -------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write the vocabulary as one JSON file, atomically; returns its path."""
        document = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "input_size": self.input_size,
            "special_tokens": self.special_tokens,
            "token_ids": self.token_ids,
            "medians": self.medians,
            "symbol_to_id": self.symbol_to_id,
            "id_mapping": self.id_mapping,
        }
        # indent=1: one entry a line, so the file greps and diffs well at little cost.
        text = json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False)
        return write_text(path, text + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> GeneVocabulary:
        """Read a vocabulary written by :meth:`save`."""
        path = Path(path)
        try:
            raw = lzma.decompress(path.read_bytes()) if path.suffix == ".xz" else path.read_bytes()
            document = json.loads(raw.decode("utf-8"))
        except FileNotFoundError:
            raise InputError("file not found", file=path, fix=_VOCABULARY_FIX) from None
        except (json.JSONDecodeError, UnicodeDecodeError, lzma.LZMAError) as error:
            raise InputError(
                f"not a JSON vocabulary ({error})", file=path, fix=_VOCABULARY_FIX
            ) from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise InputError(
                f'not a genoformer gene vocabulary (no "format": "{FORMAT}")',
                file=path,
                fix=_VOCABULARY_FIX,
            )
        if document.get("format_version") != FORMAT_VERSION:
            raise InputError(
                f"format version {document.get('format_version')!r}, "
                f"this genoformer reads {FORMAT_VERSION}",
                file=path,
                fix="upgrade genoformer",
            )
        try:
            return cls(
                token_ids=document.get("token_ids"),
                medians=document.get("medians"),
                symbol_to_id=document.get("symbol_to_id", {}),
                id_mapping=document.get("id_mapping", {}),
                input_size=document.get("input_size"),
                name=document.get("name"),
                special_tokens=document.get("special_tokens"),
            )
        except InputError as error:
            raise InputError(error.problem, file=path, where=error.where, fix=error.fix) from None


def _check(vocab: GeneVocabulary) -> None:
    """Raise InputError (without a file: the caller adds it) if ``vocab`` is inconsistent."""

    def mapping(field_name: str, key_type: type, value_types: tuple[type, ...]) -> None:
        value = getattr(vocab, field_name)
        if not isinstance(value, dict):
            raise InputError(f"{field_name} is a {type(value).__name__}, expected a mapping")
        for key, item in value.items():
            # bool is an int to Python, never a token id or a median.
            if (
                not isinstance(key, key_type)
                or not isinstance(item, value_types)
                or isinstance(item, bool)
            ):
                raise InputError(
                    f"{key!r}: {item!r} is not {key_type.__name__} -> "
                    f"{' or '.join(t.__name__ for t in value_types)}",
                    where=field_name,
                )

    mapping("token_ids", str, (int,))
    mapping("medians", str, (float, int))
    mapping("symbol_to_id", str, (str,))
    mapping("id_mapping", str, (str,))
    mapping("special_tokens", str, (str,))
    if not isinstance(vocab.name, str) or not vocab.name:
        raise InputError(f"name {vocab.name!r} is not a non-empty string", where="name")
    size = vocab.input_size
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise InputError(f"input size {size!r} is not a positive integer", where="input_size")
    for role, token in vocab.special_tokens.items():
        if token not in vocab.token_ids:
            raise InputError(f"special token {token!r} ({role}) has no token id", where="token_ids")
    ids = np.fromiter(vocab.token_ids.values(), dtype=np.int64, count=len(vocab.token_ids))
    if len(ids) and ids.min() < 0:
        raise InputError("negative token id", where="token_ids")
    if len(np.unique(ids)) != len(ids):
        raise InputError("two tokens share a token id", where="token_ids")
    values = np.fromiter(vocab.medians.values(), dtype=np.float64, count=len(vocab.medians))
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        gene = list(vocab.medians)[int(np.argmax(bad))]
        raise InputError(
            f"median of {gene} is {vocab.medians[gene]!r}, expected a positive number",
            where="medians",
        )


def _release(version: str) -> dict[str, Any]:
    key = str(version).strip()
    for release_key, release in _RELEASES.items():
        if key.upper() == release_key or key.lower() == release["name"].lower():
            return release
    raise InputError(
        f"unknown Geneformer dictionaries {version!r}",
        fix="use V1 (gc30M) or V2 (gc104M), or the path of a vocabulary file",
    )


def _pickle_folder(name: str, directory: str | os.PathLike | None) -> Path:
    """The folder that holds the four pickles of release ``name``."""
    pickle = _PICKLES["token_ids"].format(name=name)
    fix = (
        f"pass {_dictionaries_option()} or set {ENV_DIR} to the folder "
        f"holding {pickle} and the other three dictionaries, or leave both out for the copy "
        "genoformer ships"
    )
    if directory is None:
        directory = os.environ.get(ENV_DIR)
        if not directory:
            raise InputError(f"where Geneformer's {name} dictionaries are is not set", fix=fix)
    base = Path(directory)
    candidates = [base, base / name]
    if name in _REPO_SUBDIRS:
        candidates += [base / _REPO_SUBDIRS[name], base / "geneformer" / _REPO_SUBDIRS[name]]
    candidates.append(base / "geneformer")
    files = [f.format(name=name) for f in _PICKLES.values()]
    for folder in candidates:
        if (folder / files[0]).is_file():
            missing = [f for f in files if not (folder / f).is_file()]
            if missing:
                raise InputError(f"{', '.join(missing)} missing beside {files[0]}", file=folder)
            return folder
    raise InputError(f"no {files[0]} here or in a {name}/ sub-folder", file=base, fix=fix)


def _dictionaries_option() -> str:
    """The folder of Geneformer's dictionaries, as the caller names it."""
    if command_line():
        return option("dictionaries", "DIR") or "the folder"
    return "directory= (dictionaries= of the sc functions)"


def resolve(
    vocabulary: str | os.PathLike | GeneVocabulary,
    directory: str | os.PathLike | None = None,
) -> GeneVocabulary:
    """A vocabulary from what the user named.

    ``"V1"``/``"V2"`` (or ``"gc30M"``/``"gc104M"``) load Geneformer's dictionaries: the
    pickles in ``directory`` (else in ``GENOFORMER_GENEFORMER_DIR``), or, when neither is
    set, the copy the package ships; a path loads our JSON format (a folder: its
    ``vocabulary.json``); a :class:`GeneVocabulary` is returned as it is.
    """
    if isinstance(vocabulary, GeneVocabulary):
        return vocabulary
    text = str(vocabulary)
    path = Path(vocabulary)
    if not path.exists() and is_release(text):
        if directory is None and not os.environ.get(ENV_DIR):
            return GeneVocabulary.packaged(text)  # type: ignore[arg-type]
        return GeneVocabulary.geneformer(text, directory)  # type: ignore[arg-type]
    if path.is_dir():
        path = path / "vocabulary.json"
    if not path.exists():
        named = len(path.parts) == 1 and not path.suffix  # a name, not a path
        raise InputError(
            f"no vocabulary named {text!r}, and no such file"
            if named
            else "no such vocabulary file",
            file=None if named else path,
            where=cli_option("vocabulary"),
            fix="pass V1 or V2 (Geneformer's dictionaries), or the path of a vocabulary file "
            "written by `genoformer sc medians`",
        )
    return GeneVocabulary.load(path)


_VOCABULARY_FIX = (
    "pass V1 or V2, or a file written by `genoformer sc medians` (GeneVocabulary.save)"
)


def is_release(name: str) -> bool:
    """Whether ``name`` names Geneformer's dictionaries (V1, V2, gc30M, gc104M)."""
    text = str(name)
    return text.upper() in _RELEASES or text.lower() in {
        r["name"].lower() for r in _RELEASES.values()
    }


def corpus_vocabulary(
    vocabulary: str | os.PathLike | GeneVocabulary | None,
    dictionaries: str | os.PathLike | None,
    records: Mapping[Path, Mapping[str, Any]],
    *,
    default: str | None = None,
    check_input_size: bool = True,
) -> GeneVocabulary:
    """The vocabulary corpora were tokenized with, checked against what they recorded.

    ``records`` holds each corpus's ``results.tokenize`` (:func:`~genoformer.sc.corpus.
    tokenize_record`). The vocabulary is the caller's, else the one the manifests name, else
    ``default`` (for corpora without a manifest, Geneformer's own); with no ``default``, a
    corpus without a recorded vocabulary is an error. ``check_input_size=False`` leaves the
    recorded input size to the caller (who checks it against the model instead).
    """
    names = {path: str(r["vocabulary"]) for path, r in records.items() if r.get("vocabulary")}
    first = next(iter(records), None)
    if vocabulary is None:
        missing = [path for path in records if path not in names]
        if missing and default is None:
            raise InputError(
                "no manifest.json names the vocabulary this corpus was tokenized with",
                file=missing[0],
                fix=f"pass the vocabulary with {option('vocabulary')} (V1, V2 or a vocabulary "
                "file)",
            )
        if len(set(names.values())) > 1:
            raise InputError(
                "the corpora were tokenized with different vocabularies ("
                + ", ".join(sorted(set(names.values())))
                + ")",
                file=first,
                fix="use corpora tokenized with one vocabulary",
            )
        vocab = _recorded(next(iter(names.values())), dictionaries, first) if names else None
        vocab = vocab or resolve(default, dictionaries)  # type: ignore[arg-type]
    else:
        vocab = resolve(vocabulary, dictionaries)
    for path, name in names.items():
        if name != vocab.name:
            raise InputError(
                f"tokenized with the {name} vocabulary, not {vocab.name}",
                file=path / "manifest.json",
                where="results.tokenize.vocabulary",
                fix="pass the vocabulary the corpus was tokenized with, or tokenize it again",
            )
    for path, record in records.items():
        size = record.get("input_size")
        if check_input_size and size is not None and int(size) != vocab.input_size:
            raise InputError(
                f"tokenized for input size {int(size):,}, the {vocab.name} vocabulary's is "
                f"{vocab.input_size:,}",
                file=path / "manifest.json",
                where="results.tokenize.input_size",
                fix="pass the vocabulary the corpus was tokenized with",
            )
    return vocab


def _recorded(
    name: str, dictionaries: str | os.PathLike | None, corpus: Path | None
) -> GeneVocabulary:
    """The vocabulary a manifest names: the corpus's copy of it, else found by its name."""
    copy = None if corpus is None else Path(corpus) / CORPUS_COPY
    if copy is not None and copy.is_file() and not is_release(name):
        return GeneVocabulary.load(copy)
    try:
        return resolve(name, dictionaries)
    except InputError as error:
        raise InputError(
            f"the corpus was tokenized with the vocabulary {name!r}, which cannot be found by "
            f"its name ({error.problem})",
            file=None if corpus is None else corpus / "manifest.json",
            fix=f"pass that vocabulary with {option('vocabulary')} (its file), or tokenize the "
            "cells again",
        ) from None
