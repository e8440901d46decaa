"""Tokenized corpora on disk: written as ``datasets``' ``save_to_disk`` lays them out, read back.

A corpus directory holds Arrow stream shards ``data-XXXXX-of-NNNNN.arrow`` (at most
:data:`SHARD_BYTES` each, as ``save_to_disk`` cuts them), ``dataset_info.json`` (the features)
and ``state.json``: what ``datasets.load_from_disk`` reads, in Geneformer as here. The shards
are streamed batch by batch and never copied, so memory stays bounded and the corpus is written
once. Columns are Geneformer's: ``input_ids`` (int16 for a V1 vocabulary, int32 otherwise, as
Geneformer writes them), ``length``, the chosen cell attributes, ``cell_id`` and
``cell_index``; the binned encoding adds ``values``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from genoformer.engine.errors import InputError
from genoformer.engine.runs import read_manifest, rerun_fix, swap_directory

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

    from genoformer.sc.vocabulary import GeneVocabulary

__all__ = ["SHARD_BYTES", "CorpusWriter", "load_corpus"]

#: Largest Arrow shard of a corpus (datasets' save_to_disk default).
SHARD_BYTES = 500 << 20


def token_dtype(vocabulary: GeneVocabulary) -> np.dtype:
    """The dtype of ``input_ids``: int16 for a V1-style vocabulary, else int32."""
    # Geneformer's V1 corpora hold int16 ids (its V1 token dictionary stores int16), its V2
    # corpora int32: write the same, so both tools read identical features.
    largest = max(vocabulary.token_ids.values(), default=0)
    if not vocabulary.has_cls_eos and largest < 2**15:
        return np.dtype(np.int16)
    return np.dtype(np.int32)


def corpus_schema(
    tokens: np.dtype, binned: bool, attributes: Mapping[str, pa.DataType]
) -> pa.Schema:
    """The Arrow schema of a corpus: input_ids, [values], attributes, cell_id, cell_index,
    length; with the ``datasets`` features in its metadata, as datasets' own writer puts them.
    """
    import datasets
    import pyarrow as pa

    fields = [pa.field("input_ids", pa.list_(pa.from_numpy_dtype(tokens)))]
    if binned:
        fields.append(pa.field("values", pa.list_(pa.int32())))
    fields += [pa.field(name, kind) for name, kind in attributes.items()]
    fields += [
        pa.field("cell_id", pa.string()),
        pa.field("cell_index", pa.int64()),
        pa.field("length", pa.int64()),
    ]
    schema = pa.schema(fields)
    features = datasets.Features.from_arrow_schema(schema)
    meta = {"info": {"features": features.to_dict()}}
    return schema.with_metadata({"huggingface": json.dumps(meta)})


class ArrowStream:
    """Record batches appended to one Arrow stream file (the format ``datasets`` maps)."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        import pyarrow as pa

        self.path = path
        self.sink = pa.OSFile(str(path), "wb")
        self.writer = pa.ipc.new_stream(self.sink, schema)
        self.n_cells = self.n_bytes = 0

    def write(self, batch: pa.RecordBatch | None) -> None:
        if batch is not None and batch.num_rows:
            self.writer.write_batch(batch)
            self.n_cells += batch.num_rows
            self.n_bytes += batch.nbytes

    def close(self) -> None:
        if self.sink is not None:
            self.writer.close()
            self.sink.close()
            self.sink = None


class CorpusWriter:
    """Writes a corpus into ``directory``: batches, or whole Arrow files, in order."""

    def __init__(self, directory: Path, schema: pa.Schema) -> None:
        import datasets

        self.directory = directory
        self.schema = schema
        self.features = datasets.Features.from_arrow_schema(schema)
        self.shards: list[Path] = []
        self.data_files: list[dict[str, str]] = []
        self.stream: ArrowStream | None = None
        self.n_cells = 0

    def _shard_name(self) -> Path:
        return self.directory / f".shard-{len(self.shards):05d}.arrow"

    def write(self, batch: pa.RecordBatch | None) -> None:
        """Append a batch of cells (``None`` or empty: nothing)."""
        if batch is None or batch.num_rows == 0:
            return
        if self.stream is None or self.stream.n_bytes >= SHARD_BYTES:
            self.close()
            self.stream = ArrowStream(self._shard_name(), self.schema)
            self.shards.append(self.stream.path)
        self.stream.write(batch)
        self.n_cells += batch.num_rows

    def adopt(self, part: Path, n_cells: int) -> None:
        """Make an Arrow stream file of ``n_cells`` cells (this schema) the next shard."""
        self.close()
        path = self._shard_name()
        os.replace(part, path)
        self.shards.append(path)
        self.n_cells += n_cells

    def close(self) -> None:
        """Close the open shard; safe to call more than once."""
        if self.stream is not None:
            self.stream.close()
            self.stream = None

    def finish(self, fingerprint: str) -> None:
        """Name the shards and write ``dataset_info.json`` and ``state.json``."""
        self.close()
        count = len(self.shards)
        names = [f"data-{i:05d}-of-{count:05d}.arrow" for i in range(count)]
        for shard, name in zip(self.shards, names, strict=True):
            os.replace(shard, self.directory / name)
        self.data_files = [{"filename": name} for name in names]
        # As save_to_disk writes them (DatasetInfo without its empty fields, Dataset state).
        info = {
            "citation": "",
            "description": "",
            "features": self.features.to_dict(),
            "homepage": "",
            "license": "",
        }
        state = {
            "_data_files": self.data_files,
            "_fingerprint": fingerprint,
            "_format_columns": None,
            "_format_kwargs": {},
            "_format_type": None,
            "_output_all_columns": False,
            "_split": None,
        }
        (self.directory / "dataset_info.json").write_text(json.dumps(info, indent=2))
        (self.directory / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))


def tokenize_record(path: str | os.PathLike | None) -> dict:
    """What ``sc tokenize`` recorded about a corpus (``vocabulary``, ``input_size`` ...): the
    ``results.tokenize`` of its manifest.json, or an empty dict for a corpus without one
    (Geneformer's) or with an unreadable one."""
    manifest = None if path is None else Path(path) / "manifest.json"
    if manifest is None or not manifest.exists():
        return {}
    try:
        record = json.loads(manifest.read_text()).get("results", {}).get("tokenize", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return record if isinstance(record, dict) else {}


def _is_corpus(path: Path) -> bool:
    return (path / "manifest.json").exists() or (path / "state.json").exists()


def check_out(out: Path, overwrite: bool = False) -> None:
    """Refuse an output path that holds something other than a corpus, and a corpus unless
    ``overwrite``."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not _is_corpus(out))):
        raise InputError(
            "exists and is not a corpus genoformer may replace",
            file=out,
            fix="choose another --out, or remove it",
        )
    if out.is_dir() and _is_corpus(out) and not overwrite:
        raise InputError("holds a corpus already", file=out, fix=rerun_fix(resumable=False))


def move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished corpus onto ``out``; an older corpus there is replaced."""
    swap_directory(tmp, out)


def load_corpus(path: str | os.PathLike) -> datasets.Dataset:
    """Load a tokenized corpus: ours, or one written by Geneformer's tokenizer.

    Raises
    ------
    InputError
        The path is missing, is not a ``datasets`` corpus, or has no ``input_ids`` column.
    """
    import datasets

    path = Path(path)
    if not path.exists():
        raise InputError(
            "no such corpus", file=path, fix="pass the directory `genoformer sc tokenize` wrote"
        )
    read_manifest(path, what="corpus", command="sc tokenize")  # none: Geneformer's corpus
    try:
        corpus = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as error:
        raise InputError(
            f"not a Hugging Face datasets corpus ({error})",
            file=path,
            fix="pass a directory written by `genoformer sc tokenize` or Geneformer's "
            "TranscriptomeTokenizer (save_to_disk)",
        ) from None
    if isinstance(corpus, datasets.DatasetDict):
        if len(corpus) != 1:
            raise InputError(
                f"holds several splits ({', '.join(corpus)}), expected one corpus",
                file=path,
                fix="pass the directory of one split",
            )
        corpus = next(iter(corpus.values()))
    if "input_ids" not in corpus.column_names:
        raise InputError(
            "has no 'input_ids' column (columns: " + ", ".join(corpus.column_names) + ")",
            file=path,
            fix="tokenize the cells first (`genoformer sc tokenize`)",
        )
    return corpus
