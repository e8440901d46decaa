"""Clumping against plink1.9 --clump on a small simulated cohort (LD, 1% missing calls)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genoformer.engine.errors import InputError
from genoformer.gwas.io.genotypes import open_genotypes
from genoformer.gwas.io.simulate import simulate
from genoformer.gwas.stats.association import associate
from genoformer.gwas.stats.clump import ClumpSettings, clump, genotype_tables, haplotype_r2


def _plink19() -> str:
    found = shutil.which("plink1.9")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("plink1.9 not installed (apt-get install plink1.9)")
        pytest.skip("plink1.9 not installed (apt-get install plink1.9)")
    return found


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("clump")
    prefix = folder / "c"
    simulate(prefix, n_samples=300, n_variants=600, n_chromosomes=2, n_causal=5, seed=3)
    y = pd.read_csv(f"{prefix}.pheno", sep=r"\s+")["quant"].to_numpy()
    with open_genotypes(prefix) as source:
        p = associate(source, y)["P"].to_numpy()
        ids = source.variants["id"].astype(str).to_numpy()
    table = folder / "assoc.txt"
    pd.DataFrame({"SNP": ids, "P": p}).to_csv(table, sep=" ", index=False)
    return {"prefix": prefix, "p": p, "ids": ids, "table": table, "folder": folder}


def _plink_clumped(cohort: dict, settings: ClumpSettings, name: str) -> pd.DataFrame:
    out = cohort["folder"] / name
    subprocess.run(
        [
            _plink19(),
            "--bfile",
            str(cohort["prefix"]),
            "--clump",
            str(cohort["table"]),
            "--clump-p1",
            str(settings.p1),
            "--clump-p2",
            str(settings.p2),
            "--clump-r2",
            str(settings.r2),
            "--clump-kb",
            str(settings.kb),
            "--out",
            str(out),
        ],  # fmt: skip
        check=True,
        capture_output=True,
    )
    return pd.read_csv(f"{out}.clumped", sep=r"\s+")


@pytest.mark.parametrize(
    "settings",
    [ClumpSettings(p1=0.01), ClumpSettings(p1=0.05, p2=0.2, r2=0.2, kb=100)],
    ids=["defaults", "loose"],
)
def test_clump_equals_plink(cohort: dict, settings: ClumpSettings) -> None:
    theirs = _plink_clumped(cohort, settings, f"plink_{settings.r2}")
    with open_genotypes(cohort["prefix"]) as source:
        ours = clump(source, cohort["p"], settings=settings)
    assert len(theirs) > 10
    assert ours["SNP"].tolist() == theirs["SNP"].tolist()  # index variants, in plink's order
    assert ours["TOTAL"].tolist() == theirs["TOTAL"].tolist()
    members = theirs["SP2"].str.replace("(1)", "", regex=False).tolist()
    assert ours["SP2"].tolist() == members


def test_r2_equals_plink_clump_verbose(cohort: dict) -> None:
    """The r2 is plink's from haplotype frequencies (its --clump-verbose RSQ), not the
    genotype correlation, for every variant plink absorbed."""
    out = cohort["folder"] / "verbose"
    subprocess.run(
        [
            _plink19(),
            "--bfile",
            str(cohort["prefix"]),
            "--clump",
            str(cohort["table"]),
            "--clump-p1",
            "0.01",
            "--clump-verbose",
            "--out",
            str(out),
        ],  # fmt: skip
        check=True,
        capture_output=True,
    )
    text = Path(f"{out}.clumped").read_text()
    index = re.findall(r"\(INDEX\)\s+(\S+)", text)
    blocks = re.split(r"\(INDEX\)", text)[1:]
    ids = list(cohort["ids"])
    checked = 0
    with open_genotypes(cohort["prefix"]) as source:
        for first, block in zip(index, blocks, strict=True):
            pairs = re.findall(r"^\s+(snp\S+)\s+\S+\s+([0-9.]+)\s+\S+/", block, re.M)
            if not pairs:
                continue
            rows = sorted({ids.index(first), *(ids.index(v) for v, _ in pairs)})
            G = source.read(variants=np.array(rows))
            codes = np.where(np.isnan(G), -1, G).astype(np.int8)
            a = codes[:, rows.index(ids.index(first))]
            for variant, rsq in pairs:
                column = codes[:, [rows.index(ids.index(variant))]]
                ours = haplotype_r2(genotype_tables(a, column))[0]
                assert ours == pytest.approx(float(rsq), abs=6e-4), variant
                checked += 1
    assert checked > 20


def test_double_heterozygotes_take_the_likelier_phase() -> None:
    """Perfect LD 11/22 haplotypes: the double heterozygotes are 11/22, r2 = 1."""
    table = np.array([[[30, 0, 0], [0, 40, 0], [0, 0, 30]]], dtype=float)
    assert haplotype_r2(table)[0] == pytest.approx(1.0)
    assert haplotype_r2(np.array([[[30, 0, 0], [0, 0, 0], [0, 0, 0]]], dtype=float))[0] == 0


@pytest.mark.parametrize(
    ("settings", "option"),
    [
        (ClumpSettings(p1=0.0), "--clump-p1"),
        (ClumpSettings(p2=1.5), "--clump-p2"),
        (ClumpSettings(r2=1.2), "--clump-r2"),
        (ClumpSettings(kb=0), "--clump-kb"),
    ],
)
def test_bad_settings_name_the_option(cohort: dict, settings: ClumpSettings, option: str) -> None:
    with open_genotypes(cohort["prefix"]) as source, pytest.raises(InputError) as error:
        clump(source, cohort["p"], settings=settings)
    assert option in str(error.value)


def test_wrong_number_of_pvalues(cohort: dict) -> None:
    with open_genotypes(cohort["prefix"]) as source, pytest.raises(InputError, match="600"):
        clump(source, cohort["p"][:10])
