"""Genotypes from PLINK 1 binary files (.bed/.bim/.fam) and VCF/BCF, read in chunks of variants.

Every reader yields the same thing: ``(variant_indices, G)`` where ``G`` is float32 of shape
``(n_samples, n_chunk)`` holding the count of allele ``a1`` (0, 1, 2; a dosage for VCF ``DS``)
and NaN for a missing call. Allele ``a1`` is column 5 of the .bim (the allele bed-reader counts
with ``count_A1=True``; plink2 reads that column as ALT), and ALT for VCF, so a .bed converted
from a VCF by plink2 gives the same numbers. :class:`ArrayGenotypes` serves a matrix already in
memory the same way.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genoformer.engine.errors import InputError

_BED_MAGIC = b"\x6c\x1b"
_VCF_SUFFIXES = (".vcf", ".vcf.gz", ".vcf.bgz", ".bcf")
_FAM_COLUMNS = ["fid", "iid", "father", "mother", "sex", "phenotype"]
_BIM_COLUMNS = ["chrom", "id", "cm", "pos", "a1", "a2"]


class GenotypeSource:
    """An opened genotype file, read in chunks of variants.

    Attributes
    ----------
    path
        The file (PLINK prefix for .bed/.bim/.fam) as given to :func:`open_genotypes`.
    samples
        One row per sample: ``fid``, ``iid`` (str), ``father``, ``mother`` (str), ``sex``
        (int: 1 male, 2 female, 0 unknown), ``phenotype`` (float, -9 as NaN).
    variants
        One row per variant, in file order: ``chrom`` (str), ``id``, ``cm`` (float),
        ``pos`` (int), ``a1`` (the counted allele), ``a2``.
    """

    kind: str = ""

    def __init__(self, path: str, samples: pd.DataFrame, variants: pd.DataFrame) -> None:
        self.path = path
        self.samples = samples
        self.variants = variants

    @property
    def n_samples(self) -> int:
        return len(self.samples)

    @property
    def n_variants(self) -> int:
        return len(self.variants)

    def chunks(
        self,
        size: int = 4096,
        *,
        samples: np.ndarray | None = None,
        variants: np.ndarray | None = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(variant_indices, G)`` for consecutive blocks of at most ``size`` variants.

        Parameters
        ----------
        size
            Variants per chunk; memory is about ``4 * n_selected_samples * size`` bytes.
        samples, variants
            Integer indices or boolean masks selecting samples and variants. Variants are
            always yielded in file order (a selection is sorted), because a VCF can only be
            read front to back. Samples come in the order given.
        """
        if size < 1:
            raise ValueError(f"chunk size must be at least 1, got {size}")
        sample_index = _as_index(samples, self.n_samples, "samples")
        variant_index = _as_index(variants, self.n_variants, "variants")
        if variant_index is not None:
            variant_index = np.unique(variant_index)
        yield from self._chunks(size, sample_index, variant_index)

    def read(
        self, *, samples: np.ndarray | None = None, variants: np.ndarray | None = None
    ) -> np.ndarray:
        """All selected genotypes at once, ``(n_samples, n_variants)`` float32; small data only."""
        n_s = self.n_samples if samples is None else len(_as_index(samples, self.n_samples, "s"))
        parts = [g for _, g in self.chunks(8192, samples=samples, variants=variants)]
        if not parts:
            return np.empty((n_s, 0), dtype=np.float32)
        return np.concatenate(parts, axis=1)

    def _chunks(
        self, size: int, samples: np.ndarray | None, variants: np.ndarray | None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the open file."""

    def __enter__(self) -> GenotypeSource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.path!r}, {self.n_samples} samples, "
            f"{self.n_variants} variants)"
        )


def open_genotypes(
    path: str | os.PathLike, *, use_dosage: bool = True, num_threads: int | None = None
) -> GenotypeSource:
    """Open genotypes for chunked reading.

    Parameters
    ----------
    path
        A PLINK 1 prefix or any of its ``.bed``/``.bim``/``.fam`` files, or a ``.vcf``,
        ``.vcf.gz`` or ``.bcf`` file.
    use_dosage
        For VCF/BCF with a ``DS`` FORMAT field: read the ALT dosage instead of ``GT``.
    num_threads
        Threads bed-reader may use to decode a chunk (default: all cores).
    """
    text = os.fspath(path)
    if text.lower().endswith(_VCF_SUFFIXES):
        if not Path(text).exists():
            raise InputError("file not found", file=text, fix="check the path")
        return VcfSource(text, use_dosage=use_dosage)
    prefix = text
    for suffix in (".bed", ".bim", ".fam"):
        if text.endswith(suffix):
            prefix = text[: -len(suffix)]
            break
    files = {s: Path(prefix + s) for s in (".bed", ".bim", ".fam")}
    if not any(p.exists() for p in files.values()):
        raise InputError(
            "no such genotype file",
            file=text,
            fix="give a PLINK prefix (x for x.bed/x.bim/x.fam) or a .vcf/.vcf.gz/.bcf file",
        )
    for p in files.values():
        if not p.exists():
            present = ", ".join(str(q.name) for q in files.values() if q.exists())
            raise InputError(
                f"missing companion file {p.name} (found {present})",
                file=p,
                fix=f"PLINK 1 binary data needs {prefix}.bed, .bim and .fam side by side",
            )
    return PlinkSource(prefix, num_threads=num_threads)


# ---------------------------------------------------------------------------------------------
# PLINK 1 binary


class PlinkSource(GenotypeSource):
    """PLINK 1 binary genotypes read through bed-reader, one block of variants at a time."""

    kind = "plink"

    def __init__(self, prefix: str, *, num_threads: int | None = None) -> None:
        self.bed_path = Path(prefix + ".bed")
        self.bim_path = Path(prefix + ".bim")
        self.fam_path = Path(prefix + ".fam")
        samples = read_fam(self.fam_path)
        variants = read_bim(self.bim_path)
        super().__init__(prefix, samples, variants)
        check_bed(self.bed_path, len(samples), len(variants))
        self.num_threads = num_threads
        self._bed: Any = None

    def _open(self) -> Any:
        if self._bed is None:
            from bed_reader import open_bed

            # Counts given, so bed-reader never re-reads the .fam/.bim we already parsed.
            self._bed = open_bed(
                self.bed_path,
                iid_count=self.n_samples,
                sid_count=self.n_variants,
                count_A1=True,
                num_threads=self.num_threads,
            )
        return self._bed

    def _chunks(
        self, size: int, samples: np.ndarray | None, variants: np.ndarray | None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        bed = self._open()
        rows: Any = slice(None) if samples is None else samples
        total = self.n_variants if variants is None else len(variants)
        for start in range(0, total, size):
            stop = min(start + size, total)
            if variants is None:
                # A slice lets bed-reader read one contiguous stretch of the file.
                cols: Any = slice(start, stop)
                index = np.arange(start, stop)
            else:
                index = variants[start:stop]
                cols = index
            g = bed.read(index=np.s_[rows, cols], dtype="float32", order="F")
            yield index, g

    def close(self) -> None:
        if self._bed is not None:
            self._bed.__exit__(None, None, None)
            self._bed = None


def check_bed(path: Path, n_samples: int, n_variants: int) -> None:
    """Raise :class:`InputError` unless ``path`` is a variant-major .bed of the expected size."""
    with open(path, "rb") as handle:
        head = handle.read(3)
    if len(head) < 3 or head[:2] != _BED_MAGIC:
        raise InputError(
            f"not a PLINK .bed file (first bytes {head.hex(' ') or 'empty'}, expected 6c 1b 01)",
            file=path,
            where="byte 0",
            fix="give the .bed written by PLINK (--make-bed) or bed-reader",
        )
    if head[2] != 1:
        raise InputError(
            f"a sample-major .bed (mode byte {head[2]:#04x}, expected 0x01): a PLINK 1 "
            "sample-major file, or not a .bed",
            file=path,
            where="byte 2",
            fix=f"rewrite it variant-major with `plink --bfile {path.with_suffix('')} "
            "--make-bed --out NEW`",
        )
    expected = n_variants * ((n_samples + 3) // 4) + 3
    actual = path.stat().st_size
    if actual != expected:
        raise InputError(
            f"{actual} bytes, expected {expected} for {n_variants} variants (.bim) x "
            f"{n_samples} samples (.fam): 3 + n_variants * ceil(n_samples / 4)",
            file=path,
            fix="the .bed, .bim and .fam must come from the same PLINK run",
        )


def _read_fields(path: Path, n_columns: int, what: str) -> pd.DataFrame:
    """Whitespace-separated text with exactly ``n_columns`` fields per line, as strings."""
    try:
        table = pd.read_csv(
            path, sep=r"\s+", header=None, dtype=str, comment=None, keep_default_na=False
        )
    except pd.errors.EmptyDataError:
        return pd.DataFrame({i: pd.Series(dtype=str) for i in range(n_columns)})
    except pd.errors.ParserError:
        table = None
    if table is not None and table.shape[1] == n_columns and not (table == "").any().any():
        return table
    # Slow path only to name the first bad line; the fast parser does not say which it was.
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if fields and len(fields) != n_columns:
                raise InputError(
                    f"{len(fields)} columns, expected {n_columns} ({what})",
                    file=path,
                    where=f"line {number}",
                    fix=f"every line of a {path.suffix} file has {n_columns} "
                    "whitespace-separated fields",
                )
    raise InputError(f"cannot parse as {what}", file=path, fix="check the file format")


def read_fam(path: str | os.PathLike) -> pd.DataFrame:
    """Read a PLINK .fam file; duplicate FID+IID pairs are an error."""
    path = Path(path)
    raw = _read_fields(path, 6, "FID IID father mother sex phenotype")
    table = pd.DataFrame(
        {
            "fid": raw[0].astype(str).to_numpy(),
            "iid": raw[1].astype(str).to_numpy(),
            "father": raw[2].astype(str).to_numpy(),
            "mother": raw[3].astype(str).to_numpy(),
            "sex": pd.to_numeric(raw[4], errors="coerce").fillna(0).astype(np.int8).to_numpy(),
            "phenotype": pd.to_numeric(raw[5], errors="coerce").replace(-9.0, np.nan).to_numpy(),
        }
    )
    check_unique_samples(table["fid"], table["iid"], path)
    return table


def check_unique_samples(fid: pd.Series, iid: pd.Series, path: str | os.PathLike | None) -> None:
    """Raise :class:`InputError` naming the two lines of the first repeated FID+IID."""
    key = fid.astype(str).str.cat(iid.astype(str), sep="\t")
    dup = key.duplicated(keep=False).to_numpy()
    if dup.any():
        first = int(np.flatnonzero(dup)[0])
        second = int(np.flatnonzero(dup & (key.to_numpy() == key.iloc[first]))[1])
        raise InputError(
            f"duplicate sample id FID={fid.iloc[first]} IID={iid.iloc[first]} "
            f"(lines {first + 1} and {second + 1})",
            file=path,
            where=f"line {second + 1}",
            fix="every FID+IID pair must be unique; rename or remove one of them",
        )


def read_bim(path: str | os.PathLike) -> pd.DataFrame:
    """Read a PLINK .bim file (chrom, id, cm, pos, a1, a2)."""
    path = Path(path)
    raw = _read_fields(path, 6, "chrom id cm pos a1 a2")
    cm = pd.to_numeric(raw[2], errors="coerce")
    pos = pd.to_numeric(raw[3], errors="coerce")
    for values, name, column in ((cm, "cM position", 2), (pos, "base-pair position", 3)):
        bad = values.isna().to_numpy()
        if bad.any():
            line = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"{name} {raw[column].iloc[line]!r} is not a number",
                file=path,
                where=f"line {line + 1}",
                fix="column 3 is the position in cM, column 4 the position in bp",
            )
    return pd.DataFrame(
        {
            "chrom": raw[0].astype(str).to_numpy(),
            "id": raw[1].astype(str).to_numpy(),
            "cm": cm.astype(np.float64).to_numpy(),
            "pos": pos.astype(np.int64).to_numpy(),
            "a1": raw[4].astype(str).to_numpy(),
            "a2": raw[5].astype(str).to_numpy(),
        }
    )


# ---------------------------------------------------------------------------------------------
# VCF / BCF


class VcfSource(GenotypeSource):
    """VCF/BCF through cyvcf2; the file is read front to back, one pass per :meth:`chunks` call.

    Only biallelic records are kept (a multi-allelic record has no single counted allele);
    they are skipped with a warning and counted in ``n_skipped``. Split them first with
    ``bcftools norm -m -any`` to keep them.
    """

    kind = "vcf"

    def __init__(self, path: str, *, use_dosage: bool = True) -> None:
        from cyvcf2 import VCF

        text = not path.lower().endswith(".bcf")
        # htslib's own header errors name no line: a text VCF's #CHROM line is checked here.
        self._header_lines = _vcf_header(path) if text else 0
        try:
            reader = VCF(path, gts012=True, lazy=True, threads=1)
        except (OSError, Exception) as error:  # cyvcf2 raises bare Exceptions on bad headers
            raise InputError(
                f"cannot open as VCF/BCF: {error}", file=path, fix="check the file format"
            ) from error
        names = list(reader.samples)
        if not names:
            reader.close()
            raise InputError(
                "no sample columns: a sites-only VCF (its #CHROM line ends at INFO), without "
                "genotypes",
                file=path,
                where=f"line {self._header_lines}" if text else "header",
                fix="give a VCF with genotypes: FORMAT and one column per sample after INFO",
            )
        self.has_dosage = "DS" in _format_ids(reader)
        self.use_dosage = bool(use_dosage and self.has_dosage)
        if text:
            reader.close()
            rows, self._keep = _vcf_sites(path, self._header_lines)
        else:
            rows, self._keep = _bcf_sites(reader)
        self.n_skipped = self._keep.count(False)
        if self.n_skipped:
            warnings.warn(
                f"{path}: skipped {self.n_skipped} multi-allelic records "
                "(split them with `bcftools norm -m -any` to keep them)",
                stacklevel=3,
            )
        variants = pd.DataFrame(rows, columns=["chrom", "id", "pos", "a1", "a2"])
        variants.insert(2, "cm", 0.0)
        variants = variants.astype({"chrom": str, "id": str, "pos": np.int64})
        samples = pd.DataFrame(
            {
                "fid": names,
                "iid": names,
                "father": "0",
                "mother": "0",
                "sex": np.zeros(len(names), dtype=np.int8),
                "phenotype": np.full(len(names), np.nan),
            }
        )
        check_unique_samples(samples["fid"], samples["iid"], path)
        super().__init__(path, samples, variants[_BIM_COLUMNS])

    def _chunks(
        self, size: int, samples: np.ndarray | None, variants: np.ndarray | None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        from cyvcf2 import VCF

        wanted = None
        if variants is not None:
            wanted = np.zeros(self.n_variants, dtype=bool)
            wanted[variants] = True
        n_rows = self.n_samples if samples is None else len(samples)
        block = np.empty((n_rows, size), dtype=np.float32, order="F")
        index: list[int] = []
        reader = VCF(self.path, gts012=True, lazy=True, threads=1)
        try:
            current = -1
            for keep, record in zip(self._keep, _records(reader, self), strict=False):
                if not keep:
                    continue
                current += 1
                if wanted is not None and not wanted[current]:
                    continue
                values = self._values(record)
                block[:, len(index)] = values if samples is None else values[samples]
                index.append(current)
                if len(index) == size:
                    yield np.asarray(index), block.copy(order="F")
                    index = []
        finally:
            reader.close()
        if index:
            yield np.asarray(index), block[:, : len(index)].copy(order="F")

    def _values(self, record: Any) -> np.ndarray:
        if self.use_dosage:
            ds = record.format("DS")
            if ds is not None:
                ds = ds[:, 0].astype(np.float32)
                # htslib's missing-float sentinel and absurd values both become NaN.
                ds[~np.isfinite(ds) | (ds < -1e30) | (ds > 1e30)] = np.nan
                return ds
        gt = record.gt_types.astype(np.float32)
        gt[gt == 3] = np.nan  # gts012: 0 hom-ref, 1 het, 2 hom-alt, 3 unknown
        return gt


_VCF_COLUMNS = ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]


def _text_lines(path: str) -> Any:
    """A text VCF's lines (gzip or BGZF compressed, or plain)."""
    import gzip

    if _is_gzip(path):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _vcf_header(path: str) -> int:
    """The line number of a text VCF's ``#CHROM`` line, refused unless it holds the eight
    fixed columns (then FORMAT and the samples, if any), tab-separated, as plink2 does."""
    with _text_lines(path) as lines:
        for number, line in enumerate(lines, start=1):
            if line.startswith("##"):
                continue
            fields = line.rstrip("\r\n").split("\t")
            if fields[:8] != _VCF_COLUMNS or (len(fields) > 8 and fields[8] != "FORMAT"):
                shown = " ".join(fields[:9]) if len(fields) > 1 else line.strip()[:80]
                raise InputError(
                    f"the header line is {shown!r}, expected {' '.join(_VCF_COLUMNS)} "
                    "[FORMAT sample...]",
                    file=path,
                    where=f"line {number}",
                    fix="the line after the ## lines names the columns, tab-separated: "
                    "#CHROM POS ID REF ALT QUAL FILTER INFO, then FORMAT and the sample names",
                )
            return number
    raise InputError(
        "no #CHROM header line",
        file=path,
        fix="a VCF has ## meta lines, then the line #CHROM POS ID REF ALT QUAL FILTER INFO "
        "FORMAT and the sample names, then one line per variant",
    )


def _vcf_sites(path: str, header_lines: int) -> tuple[list[tuple], list[bool]]:
    """The variant table of a text VCF from its first five columns (a C parser, so that
    an unreadable POS gets its line number: htslib reads it as position 1 with a log line);
    multi-allelic records (and records without ALT) are flagged not kept."""
    import csv

    try:
        sites = pd.read_csv(
            path,
            sep="\t",
            header=None,
            skiprows=header_lines,
            usecols=range(5),
            dtype=str,
            keep_default_na=False,
            quoting=csv.QUOTE_NONE,
            compression="gzip" if _is_gzip(path) else None,
        )
    except pd.errors.EmptyDataError:
        return [], []
    except (pd.errors.ParserError, ValueError) as error:
        raise InputError(
            f"cannot read the variant lines: {error}", file=path, fix="check the file format"
        ) from error
    pos = pd.to_numeric(sites[1], errors="coerce")
    bad = (pos.isna() | sites[4].isna()).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        line = header_lines + row + 1
        short = pd.isna(sites[4].iloc[row])
        raise InputError(
            "fewer than the 8 fixed columns"
            if short
            else f"POS {sites[1].iloc[row]!r} is not a number",
            file=path,
            where=f"line {line}",
            fix="each variant line is tab-separated: CHROM, POS (a whole number), ID, REF, "
            "ALT, QUAL, FILTER, INFO, FORMAT and one genotype per sample",
        )
    keep = [alt != "." and "," not in alt for alt in sites[4]]
    ids = sites[2].where(sites[2] != "", ".")
    rows = [
        (c, i, int(p), a, r)
        for c, i, p, a, r, k in zip(sites[0], ids, pos, sites[4], sites[3], keep, strict=True)
        if k
    ]
    return rows, keep


def _is_gzip(path: str) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _bcf_sites(reader: Any) -> tuple[list[tuple], list[bool]]:
    """The variant table of a BCF, read by htslib without the sample columns."""
    rows: list[tuple] = []
    keep: list[bool] = []
    reader.set_samples([])
    for record in reader:
        alts = record.ALT
        keep.append(len(alts) == 1)
        if keep[-1]:
            rows.append((record.CHROM, record.ID or ".", record.POS, alts[0], record.REF))
    reader.close()
    return rows, keep


def _records(reader: Any, source: VcfSource) -> Iterator[Any]:
    """The reader's records; a record htslib cannot parse (a short line) is bad input
    naming its line and the variant after the last good one."""
    done = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except Exception as error:  # cyvcf2 raises a bare Exception for htslib's errors
            raise _bad_record(source, done) from error
        done += 1
        yield record


def _bad_record(source: VcfSource, done: int) -> InputError:
    """The error for the record after ``done`` good ones, which htslib refused."""
    n = source.n_samples
    expected = 9 + n
    if source._header_lines:
        with _text_lines(source.path) as lines:
            for number, line in enumerate(lines, start=1):
                if number <= source._header_lines:
                    continue
                fields = line.rstrip("\r\n").split("\t")
                if len(fields) < expected:
                    site = ":".join(fields[:2])
                    name = fields[2] if len(fields) > 2 else "."
                    return InputError(
                        f"variant {name} at {site} has {len(fields)} columns, expected "
                        f"{expected} (9 + {n} samples of the #CHROM line)",
                        file=source.path,
                        where=f"line {number}",
                        fix="give every variant line one genotype column per sample (./. "
                        "for a missing call); a truncated file needs to be written again",
                    )
    return InputError(
        f"htslib cannot read variant record {done + 1}",
        file=source.path,
        where=f"record {done + 1}",
        fix="check the file (e.g. `bcftools view` on it) or convert it again",
    )


def _format_ids(reader: Any) -> set[str]:
    ids = set()
    for header in reader.header_iter():
        info = header.info()
        if info.get("HeaderType") == "FORMAT" and "ID" in info:
            ids.add(info["ID"])
    return ids


def _as_index(selection: np.ndarray | None, n: int, what: str) -> np.ndarray | None:
    """Integer indices from an index array or a boolean mask; ``None`` means all."""
    if selection is None:
        return None
    array = np.asarray(selection)
    if array.dtype == bool:
        if array.shape != (n,):
            raise ValueError(f"{what} mask has length {array.shape}, expected {n}")
        return np.flatnonzero(array)
    array = array.astype(np.int64, copy=False).ravel()
    if array.size and (array.min() < 0 or array.max() >= n):
        raise IndexError(f"{what} index out of range 0..{n - 1}")
    return array


# ------------------------------------------------------------------------------ in memory


class ArrayGenotypes(GenotypeSource):
    """Genotypes already in memory ((samples, variants), NaN missing) as a genotype source,
    so that :func:`~genoformer.gwas.stats.association.associate` tests them like a file."""

    kind = "array"

    def __init__(self, G: np.ndarray, variants: pd.DataFrame, samples: pd.DataFrame) -> None:
        super().__init__(
            "<memory>", samples.reset_index(drop=True), variants.reset_index(drop=True)
        )
        self._G = np.asarray(G, dtype=np.float32)

    def _chunks(
        self, size: int, samples: np.ndarray | None, variants: np.ndarray | None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        columns = np.arange(self.n_variants) if variants is None else variants
        rows = self._G if samples is None else self._G[samples]
        for start in range(0, len(columns), size):
            index = columns[start : start + size]
            yield index, rows[:, index]


# ------------------------------------------------------------------ sex chromosomes and MT

#: plink's names (and numeric codes) of the chromosomes it does not treat as autosomes.
_NOT_AUTOSOMES = {"X": "X", "23": "X", "Y": "Y", "24": "Y", "XY": "XY", "25": "XY"}
_NOT_AUTOSOMES |= {"MT": "MT", "M": "MT", "26": "MT"}


def warn_sex_chromosomes(source: GenotypeSource) -> None:
    """Say how variants on X, Y, XY (the pseudo-autosomal region) and MT are treated: as
    autosomes. plink2 does not (males haploid on X and Y, sex a covariate on X, Y on males
    only, MT haploid), so the numbers differ from plink2's there."""
    bare = source.variants["chrom"].astype(str).str.replace(r"^chr", "", case=False, regex=True)
    kinds = bare.str.upper().map(_NOT_AUTOSOMES).dropna()
    if kinds.empty:
        return
    counts = kinds.value_counts()
    listing = ", ".join(f"{counts[k]:,} on {k}" for k in ("X", "Y", "XY", "MT") if k in counts)
    warnings.warn(
        f"{source.path}: variants {listing} are treated as autosomal (0/1/2 allele counts "
        "for every sample, no sex covariate); plink2 counts males as haploid on X and Y, adds "
        "sex as a covariate on X and tests MT as haploid (to leave them out: plink2 --autosome)",
        stacklevel=3,
    )
