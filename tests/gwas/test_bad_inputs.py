"""Bad inputs of ``genoformer gwas ...``: each answers with the line docs/bad-inputs.md shows.

Every case starts from one tiny PLINK fileset (40 samples x 24 variants, with phenotypes and
covariates) written once per module and copied into the case's folder, where the case breaks
it; the cases of ``predict`` and ``explain`` share one tiny trained model.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.bad_inputs import BadInput, check_case, check_catalogue

ROOT = Path(__file__).resolve().parents[2]
SHARED: dict[str, Path] = {}
N_SAMPLES, N_VARIANTS = 40, 24
VCF_HEAD = '##fileformat=VCFv4.2\n##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
VCF_COLUMNS = "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"


def _write_cohort(prefix: Path) -> None:
    """The tiny cohort: ``prefix``.bed/.bim/.fam, .pheno (quant, binary) and .covar."""
    from bed_reader import to_bed

    rng = np.random.default_rng(0)
    freq = rng.uniform(0.15, 0.5, N_VARIANTS)
    G = rng.binomial(2, freq, size=(N_SAMPLES, N_VARIANTS)).astype(np.float32)
    G[rng.random(G.shape) < 0.01] = np.nan
    ids = [f"ind{i + 1}" for i in range(N_SAMPLES)]
    half = N_VARIANTS // 2
    to_bed(
        f"{prefix}.bed",
        G,
        properties={
            "fid": [f"fam{i + 1}" for i in range(N_SAMPLES)],
            "iid": ids,
            "sex": [1 + i % 2 for i in range(N_SAMPLES)],
            "chromosome": ["1"] * half + ["2"] * (N_VARIANTS - half),
            "sid": [f"rs{j + 1}" for j in range(N_VARIANTS)],
            "bp_position": [1000 * (j % half + 1) for j in range(N_VARIANTS)],
            "allele_1": ["A"] * N_VARIANTS,
            "allele_2": ["G"] * N_VARIANTS,
        },
    )
    ids_table = pd.DataFrame({"FID": [f"fam{i + 1}" for i in range(N_SAMPLES)], "IID": ids})
    quant = np.nan_to_num(G[:, 0], nan=1.0) + rng.normal(size=N_SAMPLES)
    pheno = ids_table.assign(
        quant=np.round(quant, 4), binary=np.where(quant > np.median(quant), 2, 1)
    )
    pheno.to_csv(f"{prefix}.pheno", sep="\t", index=False)
    covar = ids_table.assign(
        age=rng.integers(30, 70, N_SAMPLES),
        sex=[1 + i % 2 for i in range(N_SAMPLES)],
        batch=rng.choice(["A", "B"], N_SAMPLES),
    )
    covar.to_csv(f"{prefix}.covar", sep="\t", index=False)


@pytest.fixture(scope="module", autouse=True)
def shared_cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gwas_bad_inputs")
    _write_cohort(folder / "c")
    SHARED["cohort"] = folder
    yield
    SHARED.clear()


def _cohort(folder: Path, *suffixes: str) -> str:
    """Copy the tiny cohort into ``folder`` (all of it, or the files of ``suffixes``)."""
    for path in SHARED["cohort"].glob("c.*"):
        if not suffixes or path.suffix in suffixes:
            shutil.copy(path, folder / path.name)
    return "c"


def _edit(folder: Path, name: str, change) -> None:
    """Rewrite ``folder/name`` as ``change`` returns it from its lines."""
    path = folder / name
    path.write_text("".join(change(path.read_text().splitlines(keepends=True))))


def _line(number: int, new: str):
    return lambda lines: lines[: number - 1] + [new] + lines[number:]


def _column(name: str, value: str, rows: slice = slice(1, None)):
    """Set column ``name`` of a tab-separated table to ``value`` in ``rows`` (lines)."""

    def change(lines):
        header = lines[0].rstrip("\n").split("\t")
        j = header.index(name)
        out = list(lines)
        for i in range(len(lines))[rows]:
            fields = lines[i].rstrip("\n").split("\t")
            fields[j] = value
            out[i] = "\t".join(fields) + "\n"
        return out

    return change


def _assoc(folder: Path, *extra: str) -> list:
    prefix = _cohort(folder)
    return ["gwas", "assoc", prefix, "--out", "run", "--pheno", "c.pheno", *extra]


def _vcf(folder: Path, header: str, rows: list[str], name: str = "g.vcf") -> str:
    (folder / name).write_text(VCF_HEAD + header + "\n" + "".join(r + "\n" for r in rows))
    (folder / "v.pheno").write_text("FID\tIID\ty\ns1\ts1\t1.5\ns2\ts2\t0.5\ns3\ts3\t2.0\n")
    return name


SAMPLES3 = VCF_COLUMNS + "\tFORMAT\ts1\ts2\ts3"
ROW = "1\t{pos}\trs{pos}\tA\tG\t.\t.\t.\tGT\t0/0\t0/1\t1/1"


def _vcf_assoc(folder: Path, header: str, rows: list[str]) -> list:
    name = _vcf(folder, header, rows)
    return ["gwas", "assoc", name, "--out", "run", "--pheno", "v.pheno"]


def _trained() -> Path:
    """A tiny model trained once on the cohort (with covariates), shared by the cases."""
    run = SHARED["cohort"] / "model"
    if not (run / "manifest.json").exists():
        from genoformer.gwas import api

        c = SHARED["cohort"] / "c"
        api.train(
            c, f"{c}.pheno", out=run, trait="quant", covar=f"{c}.covar", epochs=1, d_model=8,
            n_layers=1, n_heads=1, decoys=2, patience=1, device="cpu",
        )  # fmt: skip
    return run


def _train(folder: Path, trait: str, *extra: str) -> list:
    prefix = _cohort(folder)
    return ["gwas", "train", prefix, "--pheno", "c.pheno", "--trait", trait, "--out", "run", *extra]


def _model_copy(folder: Path) -> str:
    shutil.copytree(_trained(), folder / "model")
    return "model"


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _incomplete(folder: Path) -> str:
    """A training run stopped half way: its manifest says running."""
    _model_copy(folder)
    manifest = json.loads((folder / "model" / "manifest.json").read_text())
    manifest["status"] = "running"
    (folder / "model" / "manifest.json").write_text(json.dumps(manifest))
    return "model"


def _existing_run(folder: Path) -> list:
    from genoformer.gwas import api

    prefix = _cohort(folder)
    api.qc(folder / prefix, out=folder / "run", maf=0.01)
    return ["gwas", "qc", prefix, "--out", "run"]


def _results(folder: Path, **columns) -> str:
    table = pd.DataFrame({"#CHROM": ["1", "1"], "POS": [10, 20], "ID": ["a", "b"], **columns})
    table.to_csv(folder / "assoc.tsv", sep="\t", index=False, na_rep="NA")
    return "assoc.tsv"


def _monomorphic(folder: Path) -> list:
    from bed_reader import open_bed, to_bed

    prefix = _cohort(folder)
    with open_bed(folder / "c.bed") as bed:
        properties = {"fid": bed.fid, "iid": bed.iid, "sid": bed.sid, "chromosome": bed.chromosome}
        properties |= {"bp_position": bed.bp_position, "allele_1": bed.allele_1}
        properties |= {"allele_2": bed.allele_2}
    to_bed(folder / "c.bed", np.zeros((N_SAMPLES, N_VARIANTS), dtype=np.float32), properties)
    return ["gwas", "assoc", prefix, "--out", "run", "--pheno", "c.pheno", "--pheno-name", "quant"]


def _sex_chromosomes(folder: Path) -> list:
    prefix = _cohort(folder)
    names = ["X"] * 4 + ["Y"] * 2 + ["MT"] * 2

    def change(lines):
        return [n + line[line.index("\t") :] for n, line in zip(names, lines, strict=False)] + (
            lines[len(names) :]
        )

    _edit(folder, "c.bim", change)
    return ["gwas", "qc", prefix, "--out", "run"]


def _plink(name: str, number: int, text: str):
    """The cohort with line ``number`` of its .bim or .fam (``name``) replaced by ``text``."""

    def make(d: Path) -> list:
        _cohort(d, ".bed", ".bim", ".fam")
        _edit(d, name, _line(number, text))
        return ["gwas", "qc", "c", "--out", "run"]

    return make


def _bed_bytes(change):
    def make(d: Path) -> list:
        _cohort(d, ".bed", ".bim", ".fam")
        path = d / "c.bed"
        path.write_bytes(change(path.read_bytes()))
        return ["gwas", "qc", "c", "--out", "run"]

    return make


def _pheno(change, *extra: str):
    def make(d: Path) -> list:
        args = _assoc(d, *extra)
        _edit(d, "c.pheno", change)
        return args

    return make


def _covar(change, *extra: str):
    def make(d: Path) -> list:
        args = _assoc(d, "--pheno-name", "quant", "--covar", "c.covar", *extra)
        _edit(d, "c.covar", change)
        return args

    return make


def _add_covariate(name: str, values) -> object:
    """A covariate column ``name`` added to c.covar, its value per line from ``values``."""

    def change(lines):
        out = [lines[0].rstrip("\n") + f"\t{name}\n"]
        for i, line in enumerate(lines[1:]):
            fields = line.rstrip("\n").split("\t")
            out.append(line.rstrip("\n") + f"\t{values(fields, i)}\n")
        return out

    return change


def _ids(lines):
    """c.pheno with FID/IID the genotypes do not have."""
    return [lines[0]] + [line.replace("fam", "other").replace("ind", "x") for line in lines[1:]]


CASES = [
    # PLINK .bed/.bim/.fam
    BadInput("no such genotype file", lambda d: ["gwas", "qc", "nothing", "--out", "run"]),
    BadInput(
        ".fam missing beside .bed and .bim",
        lambda d: (_cohort(d, ".bed", ".bim"), ["gwas", "qc", "c", "--out", "run"])[1],
    ),
    BadInput(".bed with wrong magic bytes", _bed_bytes(lambda b: b"\x00\x00" + b[2:])),
    BadInput(".bed in sample-major mode", _bed_bytes(lambda b: b[:2] + b"\x00" + b[3:])),
    BadInput(".bed truncated", _bed_bytes(lambda b: b[: len(b) - 7])),
    BadInput(".bed empty (0 bytes)", _bed_bytes(lambda b: b"")),
    BadInput(
        ".bim with one variant more than the .bed",
        _plink("c.bim", N_VARIANTS + 1, "2\trs99\t0\t99000\tA\tG\n"),
    ),
    BadInput(".bim line with 5 columns", _plink("c.bim", 3, "1\trs3\t0\t3000\tA\n")),
    BadInput(".bim position not a number", _plink("c.bim", 4, "1\trs4\t0\tfour\tA\tG\n")),
    BadInput(".fam line with 5 columns", _plink("c.fam", 2, "fam2 ind2 0 0 2\n")),
    BadInput(".fam with a duplicate sample id", _plink("c.fam", 5, "fam1 ind1 0 0 1 -9\n")),
    BadInput("chromosomes X, Y and MT", _sex_chromosomes, code=0, warns="treated as autosomal"),
    # VCF
    BadInput("VCF not found", lambda d: ["gwas", "qc", "absent.vcf", "--out", "run"]),
    BadInput(
        "VCF with a misspelt #CHROM header",
        lambda d: _vcf_assoc(d, SAMPLES3.replace("#CHROM", "#CHRM"), [ROW.format(pos=100)]),
    ),
    BadInput(
        "VCF header separated by spaces",
        lambda d: _vcf_assoc(d, SAMPLES3.replace("\t", " "), [ROW.format(pos=100)]),
    ),
    BadInput("VCF without a #CHROM line", lambda d: _vcf_assoc(d, "##INFO=<ID=X>", [])),
    BadInput(
        "VCF row with fewer sample columns than the header",
        lambda d: _vcf_assoc(
            d, SAMPLES3, [ROW.format(pos=100), ROW.format(pos=200).rsplit("\t", 1)[0]]
        ),
    ),
    BadInput(
        "VCF with a non-numeric POS",
        lambda d: _vcf_assoc(d, SAMPLES3, [ROW.format(pos=100), ROW.format(pos="2OO")]),
    ),
    BadInput(
        "VCF without sample columns (sites only)",
        lambda d: _vcf_assoc(d, VCF_COLUMNS, ["1\t100\trs1\tA\tG\t.\t.\t."]),
    ),
    BadInput(
        "VCF with a multi-allelic record",
        lambda d: _vcf_assoc(
            d, SAMPLES3, [ROW.format(pos=100), ROW.format(pos=200).replace("\tG\t", "\tG,T\t")]
        ),
        code=0,
        warns="multi-allelic",
    ),
    # phenotypes
    BadInput("phenotype file not found", lambda d: _assoc(d)[:-1] + ["absent.pheno"]),
    BadInput("phenotype file empty", _pheno(lambda lines: [])),
    BadInput("phenotype header without IID", _pheno(_line(1, "FID\tID\tquant\tbinary\n"))),
    BadInput("phenotype line with a missing value", _pheno(_line(3, "fam2\tind2\t0.5\n"))),
    BadInput("phenotype with a duplicate sample", _pheno(_line(4, "fam1\tind1\t0.1\t1\n"))),
    BadInput(
        "phenotype with a text value",
        _pheno(_column("quant", "tall", slice(4, 5)), "--pheno-name", "quant"),
    ),
    BadInput("phenotype all missing", _pheno(_column("quant", "NA"), "--pheno-name", "quant")),
    BadInput("phenotype ids not in the genotypes", _pheno(_ids)),
    BadInput("--pheno-name not in the file", lambda d: _assoc(d, "--pheno-name", "height")),
    BadInput(
        "case/control with cases only",
        _pheno(_column("binary", "2"), "--pheno-name", "binary"),
    ),
    BadInput(
        "case/control with controls only",
        _pheno(_column("binary", "1"), "--pheno-name", "binary"),
    ),
    BadInput(
        "case/control value 3",
        _pheno(_column("binary", "3", slice(2, 3)), "--pheno-name", "binary", "--test", "logistic"),
    ),
    # covariates
    BadInput(
        "numeric covariate with a text value",
        _covar(_column("age", "forty", slice(6, 7))),
    ),
    BadInput(
        "categorical covariate with a number",
        _covar(_column("batch", "3", slice(6, 7))),
    ),
    BadInput(
        "constant covariate",
        _covar(_add_covariate("site", lambda fields, i: "7")),
        code=0,
        warns="constant",
    ),
    BadInput(
        "collinear covariates",
        _covar(_add_covariate("age_months", lambda fields, i: str(12 * int(fields[2])))),
    ),
    BadInput(
        "covariates with a variance inflation above 50",
        _covar(
            _add_covariate(
                "age_sex", lambda fields, i: f"{int(fields[2]) + 10 * int(fields[3]) + i % 3:d}"
            ),
        ),
    ),
    BadInput("--covar-name not in the file", _covar(lambda lines: lines, "--covar-name", "bmi")),
    BadInput(
        "covariate header with a repeated name",
        _covar(_line(1, "FID\tIID\tage\tage\tbatch\n")),
    ),
    # thresholds and sizes
    BadInput("--maf 2", lambda d: ["gwas", "qc", _cohort(d), "--out", "run", "--maf", "2"]),
    BadInput("--maf -1", lambda d: ["gwas", "qc", _cohort(d), "--out", "run", "--maf", "-1"]),
    BadInput("--geno 1.5", lambda d: ["gwas", "qc", _cohort(d), "--out", "run", "--geno", "1.5"]),
    BadInput("--hwe 2", lambda d: ["gwas", "qc", _cohort(d), "--out", "run", "--hwe", "2"]),
    BadInput("QC that removes every variant", lambda d: _assoc(d, "--maf", "0.5")),
    BadInput("--pcs above the number of samples", lambda d: _assoc(d, "--pcs", "500")),
    BadInput(
        "pca --components 0",
        lambda d: ["gwas", "pca", _cohort(d), "--out", "run", "--components", "0"],
    ),
    BadInput(
        "simulate --samples 1",
        lambda d: ["gwas", "simulate", "--out", "sim", "--samples", "1", "--variants", "5"],
    ),
    BadInput(
        "simulate --maf 0.6",
        lambda d: ["gwas", "simulate", "--out", "sim", "--samples", "20", "--maf", "0.6"],
    ),
    BadInput(
        "simulate --prevalence 0",
        lambda d: ["gwas", "simulate", "--out", "sim", "--samples", "20", "--prevalence", "0"],
    ),
    BadInput(
        "no variant testable (all monomorphic)",
        _monomorphic,
        code=0,
        warns="no Manhattan or QQ plot drawn",
    ),
    # run directories
    BadInput("existing run without --overwrite", _existing_run),
    BadInput(
        "--out is a file",
        lambda d: ((d / "run").write_text("x"), ["gwas", "qc", _cohort(d), "--out", "run"])[1],
    ),
    # plot
    BadInput("plot of a missing results file", lambda d: ["gwas", "plot", "no.tsv", "--out", "p"]),
    BadInput(
        "plot of a table without P",
        lambda d: ["gwas", "plot", _results(d, BETA=[0.1, 0.2]), "--out", "p"],
    ),
    BadInput(
        "plot of a table with no p-value",
        lambda d: ["gwas", "plot", _results(d, P=[np.nan, np.nan]), "--out", "p"],
    ),
    BadInput(
        "plot --figures with an unknown format",
        lambda d: ["gwas", "plot", _results(d, P=[0.1, 0.2]), "--out", "p", "--figures", "gif"],
    ),
    # train, predict, explain
    BadInput(
        "train --validation and --test adding up to more than 1",
        lambda d: _train(d, "quant", "--validation", "0.6", "--test", "0.5"),
    ),
    BadInput("train --trait not in the file", lambda d: _train(d, "bmi")),
    BadInput(
        "predict on genotypes without the model's variants",
        lambda d: [
            "gwas",
            "predict",
            _model_copy(d),
            _vcf(d, SAMPLES3, [ROW.format(pos=100)]),
            "--out",
            "pred",
        ],  # fmt: skip
    ),
    BadInput(
        "predict without the model's covariates",
        lambda d: ["gwas", "predict", _model_copy(d), _cohort(d), "--out", "pred"],
    ),
    BadInput(
        "predict from an incomplete training run",
        lambda d: [
            "gwas",
            "predict",
            _incomplete(d),
            _cohort(d),
            "--covar",
            "c.covar",
            "--out",
            "pred",
        ],  # fmt: skip
    ),
    BadInput(
        "predict with truncated model weights",
        lambda d: (
            _truncate(d / _model_copy(d) / "model" / "model.safetensors"),
            ["gwas", "predict", "model", _cohort(d), "--covar", "c.covar", "--out", "pred"],
        )[1],
    ),
    BadInput(
        "explain a folder that is not a training run",
        lambda d: ((d / "empty").mkdir(), ["gwas", "explain", "empty", "--out", "ex"])[1],
    ),
    BadInput(
        "explain with an unknown method",
        lambda d: ["gwas", "explain", _model_copy(d), "--out", "ex", "--methods", "shap"],
    ),
    BadInput(
        "explain --null-pairs 0",
        lambda d: ["gwas", "explain", _model_copy(d), "--out", "ex", "--null-pairs", "0"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case, tmp_path, capsys):
    check_case(case, tmp_path, capsys, "gwas")


def test_catalogue():
    check_catalogue(CASES, "gwas", at_least=40)


def test_no_testable_variant_still_writes_the_tables(tmp_path):
    """A run where every test fails ends complete: tables written, no figure, a warning."""
    from genoformer.gwas import api

    _monomorphic(tmp_path)
    with pytest.warns(UserWarning, match="none of the 24 variants has a p-value"):
        result = api.assoc(tmp_path / "c", out=tmp_path / "run", pheno=tmp_path / "c.pheno")
    table = pd.read_csv(tmp_path / "run" / "assoc.tsv", sep="\t")
    assert len(table) == N_VARIANTS and table["P"].isna().all()
    assert "manhattan" not in result.outputs and (tmp_path / "run" / "adjust.tsv").exists()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "complete"


def test_constant_covariate_is_left_out(tmp_path):
    from genoformer.gwas import api

    _covar(_add_covariate("site", lambda fields, i: "7"))(tmp_path)
    with pytest.warns(UserWarning, match="covariate 'site' is constant"):
        result = api.assoc(
            tmp_path / "c", out=tmp_path / "run", pheno=tmp_path / "c.pheno",
            pheno_name="quant", covar=tmp_path / "c.covar",
        )  # fmt: skip
    assert result.metrics["covariates"] == ["age", "sex", "batch=B"]


def _options() -> tuple[set[str], set[str]]:
    """The options of every ``genoformer gwas`` command, and the parameters of every
    function of the gwas package (the API names)."""
    import typer

    from genoformer.gwas.cli import app

    command = typer.main.get_command(app)
    options = {o for c in command.commands.values() for p in c.params for o in p.opts}
    names = set()
    for path in (ROOT / "src/genoformer/gwas").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                names |= {a.arg for a in node.args.args + node.args.kwonlyargs}
    return options, names


def _texts(node: ast.AST):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.JoinedStr):
        yield "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    elif isinstance(node, ast.BinOp):
        yield from _texts(node.left)
        yield from _texts(node.right)


def test_messages_name_options_that_exist():
    """Every ``--option`` an InputError of the gwas pillar names (outside a plink command
    line) is an option of a gwas command; a Python name it gives as the place, ``where=x``,
    is a parameter of a gwas function."""
    options, names = _options()
    wrong = []
    for path in (ROOT / "src/genoformer/gwas").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "InputError"):
                continue
            parts = list(node.args) + [k.value for k in node.keywords if k.arg in ("fix", "where")]
            for text in (t for part in parts for t in _texts(part)):
                for found in re.finditer(r"--[a-z][a-z0-9-]*", text):
                    if "plink" not in text[: found.start()].lower() and found[0] not in options:
                        wrong.append(f"{path.name}:{node.lineno} {found[0]}")
                for found in re.finditer(r"\b([a-z]+(?:_[a-z]+)*)=", text):
                    if found[1] not in names:
                        wrong.append(f"{path.name}:{node.lineno} {found[1]}=")
            places = [k.value.value for k in node.keywords if k.arg == "where"
                      and isinstance(k.value, ast.Constant)]  # fmt: skip
            for place in places:
                if re.fullmatch(r"[a-z]+(_[a-z]+)+", place) and place not in names:
                    wrong.append(f"{path.name}:{node.lineno} where={place}")
    assert not wrong, wrong
