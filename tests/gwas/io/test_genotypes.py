"""Reading genotypes: PLINK .bed through bed-reader, VCF through cyvcf2, in chunks."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from bed_reader import open_bed, to_bed

from genoformer.engine.errors import InputError
from genoformer.gwas.io.genotypes import GenotypeSource, open_genotypes
from tests.conftest import shared_data

N_SAMPLES, N_VARIANTS = 37, 53  # 37: the last byte of each variant is partly padding


def _plink2() -> str:
    found = shutil.which("plink2")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("plink2 not installed")
        pytest.skip("plink2 not installed")
    return found


@pytest.fixture()
def bed(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(3)
    values = rng.integers(0, 3, (N_SAMPLES, N_VARIANTS)).astype(np.float32)
    values[rng.random(values.shape) < 0.1] = np.nan
    prefix = tmp_path / "toy"
    properties = {
        "fid": [f"f{i}" for i in range(N_SAMPLES)],
        "iid": [f"i{i}" for i in range(N_SAMPLES)],
        "sex": [1 + i % 2 for i in range(N_SAMPLES)],
        "chromosome": ["1"] * 30 + ["2"] * 23,
        "sid": [f"rs{j}" for j in range(N_VARIANTS)],
        "bp_position": np.arange(N_VARIANTS) * 100 + 5,
        "allele_1": ["A"] * N_VARIANTS,
        "allele_2": ["G"] * N_VARIANTS,
    }
    to_bed(f"{prefix}.bed", values, properties=properties)
    return prefix, values


@pytest.mark.parametrize("size", [1, 4, 16, 53, 1000])
def test_chunks_give_back_what_to_bed_wrote(bed, size):
    prefix, values = bed
    with open_genotypes(prefix) as source:
        assert isinstance(source, GenotypeSource)
        seen = []
        parts = []
        for index, g in source.chunks(size):
            assert g.dtype == np.float32 and g.shape == (N_SAMPLES, len(index))
            assert len(index) <= size
            seen.extend(index.tolist())
            parts.append(g)
    assert seen == list(range(N_VARIANTS))
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), values)


def test_tables_and_selections(bed):
    prefix, values = bed
    source = open_genotypes(f"{prefix}.bim")  # any of the three files names the set
    assert (source.n_samples, source.n_variants) == (N_SAMPLES, N_VARIANTS)
    assert list(source.samples.columns) == ["fid", "iid", "father", "mother", "sex", "phenotype"]
    assert list(source.variants.columns) == ["chrom", "id", "cm", "pos", "a1", "a2"]
    assert source.samples["iid"].iloc[2] == "i2" and source.samples["sex"].iloc[1] == 2
    assert source.variants["chrom"].iloc[-1] == "2" and source.variants["pos"].iloc[1] == 105
    assert (source.variants["a1"] == "A").all()
    samples = np.array([5, 0, 36])
    mask = np.zeros(N_VARIANTS, dtype=bool)
    mask[[3, 4, 20, 52]] = True
    got = source.read(samples=samples, variants=mask)
    np.testing.assert_array_equal(got, values[np.ix_(samples, np.flatnonzero(mask))])
    # An unsorted selection comes back in file order.
    index, g = next(source.chunks(10, variants=np.array([9, 2, 5])))
    assert index.tolist() == [2, 5, 9]
    np.testing.assert_array_equal(g, values[:, [2, 5, 9]])
    source.close()


def test_hapmap3_reads_in_chunks():
    bed_path = shared_data("geno/hapmap3/HM3_thinned_autosomal_overlap.bed")
    start = time.perf_counter()
    with open_genotypes(bed_path) as source:
        assert (source.n_samples, source.n_variants) == (957, 14_079)
        total = 0
        counts = np.zeros(3)
        for index, g in source.chunks(4096):
            total += len(index)
            counts += [(g == k).sum() for k in range(3)]
            if index[0] == 4096:
                with open_bed(bed_path, count_A1=True) as ref:
                    expected = ref.read(index=np.s_[:, 4096:8192], dtype="float32")
                np.testing.assert_array_equal(g, expected)
    elapsed = time.perf_counter() - start
    assert total == 14_079
    # QC'd with --geno 0.01: almost every call is present.
    assert counts.sum() > 0.99 * 957 * 14_079
    assert elapsed < 30


def _write_vcf(path: Path, gt: list[list[str]], ds: list[list[str]] | None) -> None:
    n = len(gt[0])
    lines = [
        "##fileformat=VCFv4.2",
        "##contig=<ID=1,length=100000>",
        "##contig=<ID=2,length=100000>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
    ]
    if ds is not None:
        lines.append('##FORMAT=<ID=DS,Number=1,Type=Float,Description="ALT dosage">')
    header = ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT"]
    lines.append("\t".join(header + [f"s{i}" for i in range(n)]))
    for j, row in enumerate(gt):
        chrom = "1" if j < 3 else "2"
        fmt = "GT" if ds is None else "GT:DS"
        cells = row if ds is None else [f"{a}:{b}" for a, b in zip(row, ds[j], strict=True)]
        fields = [chrom, str(100 * (j + 1)), f"v{j}", "C", "T", ".", "PASS", ".", fmt]
        lines.append("\t".join(fields + cells))
    path.write_text("\n".join(lines) + "\n")


GT = [
    ["0/0", "0/1", "1/1", "./.", "0|1", "1|0"],
    ["1/1", "1/1", "0/0", "0/1", "./.", "0/0"],
    ["0/1", "0/0", "0/0", "0/0", "1/1", "0/1"],
    ["./.", "./.", "0/1", "1/1", "0/0", "1|1"],
]
GT_COUNTS = np.array(
    [
        [0, 1, 2, np.nan, 1, 1],
        [2, 2, 0, 1, np.nan, 0],
        [1, 0, 0, 0, 2, 1],
        [np.nan, np.nan, 1, 2, 0, 2],
    ],
    dtype=np.float32,
).T
DS = [
    ["0.1", "0.9", "1.8", ".", "1", "1.2"],
    ["2", "1.95", "0", "1", ".", "0.05"],
    ["1", "0", "0", "0", "2", "1"],
    [".", ".", "0.7", "2", "0", "2"],
]


def test_vcf_gt_and_dosage(tmp_path):
    path = tmp_path / "toy.vcf"
    _write_vcf(path, GT, DS)
    with open_genotypes(path, use_dosage=False) as source:
        assert (source.n_samples, source.n_variants) == (6, 4)
        assert source.samples["iid"].tolist() == [f"s{i}" for i in range(6)]
        assert (source.samples["fid"] == source.samples["iid"]).all()
        assert source.variants[["a1", "a2"]].iloc[0].tolist() == ["T", "C"]
        assert source.variants["chrom"].tolist() == ["1", "1", "1", "2"]
        np.testing.assert_array_equal(source.read(), GT_COUNTS)
        chunks = list(source.chunks(3, samples=np.array([4, 0])))
        assert [c[0].tolist() for c in chunks] == [[0, 1, 2], [3]]
        np.testing.assert_array_equal(np.hstack([c[1] for c in chunks]), GT_COUNTS[[4, 0]])
    with open_genotypes(path) as source:
        expected = np.array([[float(v) if v != "." else np.nan for v in r] for r in DS]).T
        np.testing.assert_allclose(source.read(), expected.astype(np.float32))


def test_vcf_multiallelic_records_are_skipped(tmp_path):
    path = tmp_path / "multi.vcf"
    _write_vcf(path, GT, None)
    text = path.read_text().replace("\tC\tT\t", "\tC\tT,G\t", 1)
    path.write_text(text)
    with pytest.warns(UserWarning, match="multi-allelic"):
        source = open_genotypes(path)
    assert source.n_variants == 3 and source.variants["id"].tolist() == ["v1", "v2", "v3"]
    np.testing.assert_array_equal(source.read(), GT_COUNTS[:, 1:])


def test_vcf_agrees_with_plink2_conversions(tmp_path, bed):
    plink2 = _plink2()
    vcf = tmp_path / "toy.vcf"
    _write_vcf(vcf, GT, None)
    out = tmp_path / "from_vcf"
    subprocess.run(
        [plink2, "--vcf", str(vcf), "--make-bed", "--out", str(out), "--threads", "1"],
        check=True,
        capture_output=True,
    )
    with open_genotypes(out) as converted, open_genotypes(vcf) as direct:
        np.testing.assert_array_equal(converted.read(), direct.read())
        assert converted.variants[["a1", "a2"]].equals(direct.variants[["a1", "a2"]])
    # And the other way: a .bed exported to VCF by plink2 reads back the same.
    prefix, values = bed
    exported = tmp_path / "exported"
    subprocess.run(
        [plink2, "--bfile", str(prefix), "--export", "vcf", "--out", str(exported)]
        + ["--threads", "1"],
        check=True,
        capture_output=True,
    )
    with open_genotypes(f"{exported}.vcf") as source:
        np.testing.assert_array_equal(source.read(), values)
        assert (source.variants["a1"] == "A").all()


# --- errors -----------------------------------------------------------------------------------


def _message(excinfo: pytest.ExceptionInfo) -> str:
    return str(excinfo.value)


def test_bad_magic_bytes(bed):
    prefix, _ = bed
    path = Path(f"{prefix}.bed")
    data = path.read_bytes()
    path.write_bytes(b"\x00\x00\x01" + data[3:])
    with pytest.raises(InputError) as excinfo:
        open_genotypes(prefix)
    assert "toy.bed" in _message(excinfo) and "6c 1b 01" in _message(excinfo)
    path.write_bytes(b"\x6c\x1b\x00" + data[3:])
    with pytest.raises(InputError) as excinfo:
        open_genotypes(prefix)
    assert "sample-major" in _message(excinfo) and "PLINK 1" in _message(excinfo)


def test_bed_size_mismatch(bed):
    prefix, _ = bed
    path = Path(f"{prefix}.bed")
    path.write_bytes(path.read_bytes()[:-1])
    expected = N_VARIANTS * ((N_SAMPLES + 3) // 4) + 3
    with pytest.raises(InputError) as excinfo:
        open_genotypes(prefix)
    assert f"{expected - 1} bytes" in _message(excinfo)
    assert f"expected {expected}" in _message(excinfo)


def test_wrong_column_counts(bed):
    prefix, _ = bed
    bim = Path(f"{prefix}.bim")
    lines = bim.read_text().splitlines()
    bim.write_text("\n".join(lines[:2] + [" ".join(lines[2].split()[:5])] + lines[3:]) + "\n")
    with pytest.raises(InputError) as excinfo:
        open_genotypes(prefix)
    assert "toy.bim line 3: 5 columns, expected 6" in _message(excinfo)
    bim.write_text("\n".join(lines[:4] + [lines[4] + " extra"] + lines[5:]) + "\n")
    with pytest.raises(InputError) as excinfo:
        open_genotypes(prefix)
    assert "toy.bim line 5: 7 columns, expected 6" in _message(excinfo)
    bim.write_text("\n".join(lines) + "\n")
    fam = Path(f"{prefix}.fam")
    lines = fam.read_text().splitlines()
    fam.write_text("\n".join([lines[0], lines[1] + " 7"] + lines[2:]) + "\n")
    with pytest.raises(InputError) as excinfo:
        open_genotypes(prefix)
    assert "toy.fam line 2: 7 columns, expected 6" in _message(excinfo)


def test_duplicate_sample_ids(bed):
    prefix, _ = bed
    fam = Path(f"{prefix}.fam")
    lines = fam.read_text().splitlines()
    lines[9] = lines[3]
    fam.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as excinfo:
        open_genotypes(prefix)
    assert "duplicate sample id FID=f3 IID=i3 (lines 4 and 10)" in _message(excinfo)
    assert "toy.fam" in _message(excinfo)


def test_missing_files(bed, tmp_path):
    prefix, _ = bed
    Path(f"{prefix}.fam").unlink()
    with pytest.raises(InputError, match=r"missing companion file toy\.fam"):
        open_genotypes(f"{prefix}.bed")
    with pytest.raises(InputError, match="no such genotype file"):
        open_genotypes(tmp_path / "nothing")
    with pytest.raises(InputError, match="file not found"):
        open_genotypes(tmp_path / "nothing.vcf.gz")


def test_vcf_short_row_is_named_in_a_compressed_file(tmp_path):
    """htslib's parse error of a row with too few sample columns becomes bad input naming the
    line and the variant, in a gzip-compressed VCF too."""
    import gzip

    plain = tmp_path / "toy.vcf"
    _write_vcf(plain, GT, None)
    lines = plain.read_text().splitlines()
    lines[7] = lines[7].rsplit("\t", 1)[0]  # the third variant loses its last sample
    path = tmp_path / "short.vcf.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    with open_genotypes(path) as source, pytest.raises(InputError) as error:
        source.read()
    assert error.value.where == "line 8"
    assert "variant v2 at 1:300 has" in error.value.problem
    assert f"expected {9 + len(GT[0])}" in error.value.problem


def test_vcf_header_and_positions_are_checked_with_their_line(tmp_path):
    path = tmp_path / "toy.vcf"
    _write_vcf(path, GT, None)
    text = path.read_text()
    path.write_text(text.replace("\t300\t", "\t3e2x\t"))
    with pytest.raises(InputError, match="POS '3e2x' is not a number") as error:
        open_genotypes(path)
    assert error.value.where == "line 8"
    path.write_text(text.replace("#CHROM\tPOS", "#CHROM\tPOSITION"))
    with pytest.raises(InputError, match="expected #CHROM POS ID") as error:
        open_genotypes(path)
    assert error.value.where == "line 5"


def test_sex_chromosomes_are_said_to_be_read_as_autosomes(tmp_path):
    from genoformer.gwas.io.genotypes import warn_sex_chromosomes

    path = tmp_path / "toy.vcf"
    _write_vcf(path, GT, None)
    with open_genotypes(path) as source:
        warn_sex_chromosomes(source)  # chromosomes 1 and 2: nothing to say
        source.variants["chrom"] = ["chrX", "23", "chrM", "Y"]
        with pytest.warns(UserWarning, match="variants 2 on X, 1 on Y, 1 on MT are treated as"):
            warn_sex_chromosomes(source)
