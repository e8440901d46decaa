"""Bad inputs of ``genoformer seq ...``: each answers with the line docs/bad-inputs.md shows.

Cases that read a trained run share one tiny run (one training step on 40 sequences of 20 bp,
classes ``a`` and ``b``), trained once for the module and copied into each case's folder.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from tests.bad_inputs import BadInput, check_case, check_catalogue, write

#: The module's trained run (set by the ``trained`` fixture before any case runs).
SHARED: dict[str, Path] = {}


def _fasta(folder: Path, text: str, name: str = "reads.fa") -> Path:
    (folder / name).write_text(text)
    return folder / name


def _random_fasta(folder: Path, name: str, n: int = 20, length: int = 20, seed: int = 0) -> Path:
    rng = random.Random(seed)
    stem = Path(name).stem
    records = [
        f">{stem}{i}\n{''.join(rng.choice('ACGT') for _ in range(length))}\n" for i in range(n)
    ]
    return _fasta(folder, "".join(records), name)


def _table(folder: Path, text: str, name: str = "seqs.tsv") -> Path:
    (folder / name).write_text(text)
    return folder / name


def _genome(folder: Path) -> Path:
    """A genome of two chromosomes: chr1 (60 bp) and chr2 (30 bp)."""
    (folder / "genome.fa").write_text(">chr1\n" + "ACGT" * 15 + "\n>chr2\n" + "GATC" * 7 + "GA\n")
    return folder / "genome.fa"


def _bed(folder: Path, text: str, genome: bool = True) -> list:
    (folder / "peaks.bed").write_text(text)
    return ["peaks.bed", *(["--genome", _genome(folder)] if genome else [])]


def _run(folder: Path) -> Path:
    """A copy of the module's trained run (cnn, classes a and b, 20 bp) in ``folder``."""
    return Path(shutil.copytree(SHARED["run"], folder / "run"))


def _edited_manifest(folder: Path, **changes) -> Path:
    run = _run(folder)
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, **changes}))
    return run


def _truncated_weights(folder: Path) -> Path:
    run = _run(folder)
    weights = run / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    return run


def _two_classes(folder: Path) -> list:
    return [_random_fasta(folder, "a.fa"), _random_fasta(folder, "b.fa", seed=1)]


def _train(folder: Path, *inputs, options: tuple = ()) -> list:
    return ["seq", "train", *inputs, "--out", "out", *options]


CASES = [
    # ---- FASTA
    BadInput(
        "FASTA record with no sequence",
        lambda d: ["seq", "train", _fasta(d, ">a\n>b\nACGT\n"), "--out", "run"],
    ),
    BadInput("FASTA file that is empty", lambda d: _train(d, _fasta(d, ""))),
    BadInput("FASTA without a '>' header", lambda d: _train(d, _fasta(d, "ACGTACGT\nACGT\n"))),
    BadInput(
        "FASTA with a letter that is not a base (X)",
        lambda d: _train(d, _fasta(d, ">a\nACGT\n>b\nACXT\n"), _random_fasta(d, "b.fa")),
    ),
    BadInput(
        "FASTA with a digit in a sequence",
        lambda d: _train(d, _fasta(d, ">a\nAC1T\n"), _random_fasta(d, "b.fa")),
    ),
    BadInput(
        "FASTA with the same id twice",
        lambda d: [
            "seq",
            "predict",
            _run(d),
            _fasta(d, ">x\n" + "ACGT" * 5 + "\n>y\n" + "ACGA" * 5 + "\n>x\n" + "ACGG" * 5 + "\n"),
            "--out",
            "p.tsv",
        ],  # fmt: skip
        code=0,
        warns="is also the id of",
    ),
    BadInput(
        "FASTA records of mixed lengths (the model needs one)",
        lambda d: _train(d, _random_fasta(d, "a.fa"), _random_fasta(d, "b.fa", length=25)),
    ),
    BadInput(
        "--length-mode pad to a length below the longest",
        lambda d: _train(d, *_two_classes(d), options=("--length-mode", "pad", "--length", "10")),
    ),
    BadInput(
        "--length-mode that does not exist",
        lambda d: _train(d, *_two_classes(d), options=("--length-mode", "stretch")),
    ),
    BadInput(
        "--length 0",
        lambda d: _train(d, *_two_classes(d), options=("--length-mode", "pad", "--length", "0")),
    ),
    BadInput(
        "--labels: fewer names than FASTA files",
        lambda d: _train(d, *_two_classes(d), options=("--labels", "x")),
    ),
    BadInput(
        "--labels and --label-pattern together",
        lambda d: _train(
            d, *_two_classes(d), options=("--labels", "x,y", "--label-pattern", "(a)")
        ),
    ),
    BadInput(
        "--label-pattern without a group",
        lambda d: _train(d, _random_fasta(d, "a.fa"), options=("--label-pattern", "a")),
    ),
    BadInput(
        "--label-pattern that is not a regular expression",
        lambda d: _train(d, _random_fasta(d, "a.fa"), options=("--label-pattern", "(a")),
    ),
    BadInput(
        "--label-pattern that misses a header",
        lambda d: _train(
            d,
            _fasta(d, ">s1 label=x\nACGT\n>s2\nACGT\n"),
            options=("--label-pattern", r"label=(\w+)"),
        ),
    ),
    BadInput(
        "FASTA files of one name in two folders",
        lambda d: _train(
            d,
            _random_fasta(d, "a.fa"),
            _random_fasta((d / "more").mkdir() or d / "more", "a.fa", seed=1),
        ),
    ),
    BadInput("one FASTA file without labels", lambda d: _train(d, _random_fasta(d, "a.fa"))),
    BadInput(
        "labels of one class only",
        lambda d: _train(d, *_two_classes(d), options=("--labels", "x,x")),
    ),
    BadInput(
        "FASTA with --task regression",
        lambda d: _train(d, *_two_classes(d), options=("--task", "regression")),
    ),
    BadInput(
        "FASTA with --targets",
        lambda d: _train(d, *_two_classes(d), options=("--targets", "score")),
    ),
    BadInput(
        "binary file named .fa",
        lambda d: write(d / "x.fa", b"\x89PNG\r\n\x1a\n\xff\xfe") or _train(d, "x.fa"),
    ),
    BadInput(
        "broken gzip file",
        lambda d: write(d / "x.fa.gz", b"\x1f\x8b\x08\x00garbage") or _train(d, "x.fa.gz"),
    ),
    BadInput("input file that does not exist", lambda d: _train(d, "missing.fa")),
    BadInput("input that is a directory", lambda d: (d / "dir.fa").mkdir() or _train(d, "dir.fa")),
    BadInput(
        "input of an unknown file type",
        lambda d: write(d / "reads.xlsx", "x") or _train(d, "reads.xlsx"),
    ),
    BadInput(
        "a FASTA file and a table together",
        lambda d: _train(d, _random_fasta(d, "a.fa"), _table(d, "sequence\tlabel\nACGT\tx\n")),
    ),
    # ---- tables
    BadInput(
        "table without a sequence column",
        lambda d: _train(d, _table(d, "seq\tscore\nACGT\t1\nACGA\t2\n")),
    ),
    BadInput(
        "table: --targets names a missing column",
        lambda d: _train(
            d, _table(d, "sequence\tscore\nACGT\t1\n"), options=("--targets", "label")
        ),
    ),
    BadInput(
        "table: a NaN target",
        lambda d: _train(d, _table(d, "sequence\tscore\nACGT\t1\nACGA\tNaN\n")),
    ),
    BadInput(
        "table: a text value among numeric targets",
        lambda d: _train(d, _table(d, "sequence\tscore\tsignal\nACGT\t1\t2\nACGA\thigh\t3\n")),
    ),
    BadInput(
        "table: two text columns as labels",
        lambda d: _train(d, _table(d, "sequence\tcell\ttissue\nACGT\tx\ty\nACGA\tz\tw\n")),
    ),
    BadInput("table that is empty", lambda d: _train(d, _table(d, ""))),
    BadInput("table with a header only", lambda d: _train(d, _table(d, "sequence\tscore\n"))),
    BadInput(
        "table row without a sequence",
        lambda d: _train(d, _table(d, "sequence\tscore\nACGT\t1\n\t2\n")),
    ),
    BadInput(
        "table row with more fields than the header",
        lambda d: _train(d, _table(d, "sequence,score\nACGT,1\nACGA,2,3\n", "seqs.csv")),
    ),
    BadInput(
        "table: labels of one class only",
        lambda d: _train(d, _table(d, "sequence\tlabel\n" + "ACGT\tx\n" * 20)),
    ),
    BadInput(
        "table: --task classification on fractional values",
        lambda d: _train(
            d,
            _table(d, "sequence\tscore\nACGT\t1.5\nACGA\t2\n"),
            options=("--task", "classification"),
        ),
    ),
    BadInput(
        "--task that does not exist",
        lambda d: _train(d, _table(d, "sequence\tscore\nACGT\t1\n"), options=("--task", "ranking")),
    ),
    BadInput(
        "table with --genome",
        lambda d: _train(
            d, _table(d, "sequence\tscore\nACGT\t1\n"), options=("--genome", _genome(d))
        ),
    ),
    # ---- BED
    BadInput(
        "BED interval past the chromosome's end",
        lambda d: _train(d, *_bed(d, "chr1\t0\t20\nchr2\t20\t40\n")),
    ),
    BadInput(
        "BED on a chromosome the genome lacks",
        lambda d: _train(d, *_bed(d, "chr1\t0\t20\n1\t0\t20\n")),
    ),
    BadInput("BED start after end", lambda d: _train(d, *_bed(d, "chr1\t30\t10\n"))),
    BadInput("BED without --genome", lambda d: _train(d, *_bed(d, "chr1\t0\t20\n", genome=False))),
    BadInput(
        "BED with a genome that does not exist",
        lambda d: _train(
            d, *_bed(d, "chr1\t0\t20\n", genome=False), options=("--genome", "hg38.fa")
        ),
    ),
    BadInput(
        "BED coordinates that are not numbers",
        lambda d: _train(d, *_bed(d, "chr1\t0\t20\nchr1\tten\t20\n")),
    ),
    BadInput(
        "BED lines of different widths",
        lambda d: _train(d, *_bed(d, "chr1\t0\t20\tp1\nchr1\t5\t25\n")),
    ),
    BadInput(
        "BED: --targets names the chrom column",
        lambda d: _train(d, *_bed(d, "chr1\t0\t20\t1.5\n"), options=("--targets", "1")),
    ),
    BadInput("BED file that is empty", lambda d: _train(d, *_bed(d, "track name=x\n"))),
    # ---- training settings
    BadInput(
        "too few sequences to split",
        lambda d: _train(d, _random_fasta(d, "a.fa", n=2), _random_fasta(d, "b.fa", n=2, seed=1)),
    ),
    BadInput(
        "so few sequences that the test split holds one",
        lambda d: _train(
            d,
            _random_fasta(d, "a.fa", n=5),
            _random_fasta(d, "b.fa", n=5, seed=1),
            options=("--epochs", "1", "--device", "cpu"),
        ),
        code=0,
        warns="AUROC and AUPRC are undefined",
    ),
    BadInput(
        "--split chromosome on sequences without chromosomes",
        lambda d: _train(d, *_two_classes(d), options=("--split", "chromosome")),
    ),
    BadInput(
        "--split that does not exist",
        lambda d: _train(d, *_two_classes(d), options=("--split", "kfold")),
    ),
    BadInput(
        "--model that does not exist",
        lambda d: _train(d, *_two_classes(d), options=("--model", "lstm")),
    ),
    BadInput(
        "--filter-width even",
        lambda d: _train(d, *_two_classes(d), options=("--filter-width", "4")),
    ),
    BadInput(
        "--device that does not exist",
        lambda d: _train(d, *_two_classes(d), options=("--device", "tpu")),
    ),
    # ---- run directories and models
    BadInput(
        "train into a finished run without --overwrite",
        lambda d: ["seq", "train", *_two_classes(d), "--out", _run(d)],
    ),
    BadInput(
        "--out that is a file",
        lambda d: write(d / "out", "notes") or _train(d, *_two_classes(d)),
    ),
    BadInput(
        "evaluate a run that did not finish",
        lambda d: ["seq", "evaluate", _edited_manifest(d, status="interrupted", reason="SIGINT")],
    ),
    BadInput(
        "evaluate a folder without a model",
        lambda d: (d / "empty").mkdir() or ["seq", "evaluate", "empty"],
    ),
    BadInput(
        "evaluate a model whose config.json is damaged",
        lambda d: (
            write(_run(d) / "model" / "config.json", "{not json") or ["seq", "evaluate", "run"]
        ),
    ),
    BadInput(
        "evaluate a model with truncated weights",
        lambda d: ["seq", "evaluate", _truncated_weights(d)],
    ),
    BadInput(
        "evaluate a run of another kind (sc pretrain)",
        lambda d: ["seq", "evaluate", _edited_manifest(d, command="sc pretrain")],
    ),
    BadInput(
        "evaluate on sequences without labels",
        lambda d: ["seq", "evaluate", _run(d), "--data", _random_fasta(d, "new.fa")],
    ),
    BadInput(
        "evaluate with a label the model does not know",
        lambda d: [
            "seq",
            "evaluate",
            _run(d),
            "--data",
            _random_fasta(d, "ctcf.fa"),
            "--labels",
            "ctcf",
        ],  # fmt: skip
    ),
    BadInput(
        "evaluate a classifier on regression targets",
        lambda d: [
            "seq",
            "evaluate",
            _run(d),
            "--data",
            _table(d, "sequence\tscore\n" + "ACGTACGTACGTACGTACGT\t1\n" * 3),
        ],  # fmt: skip
    ),
    BadInput(
        "evaluate into an evaluation already there",
        lambda d: (
            (_run(d) / "evaluation").mkdir()
            or write(
                d / "run" / "evaluation" / "manifest.json",
                json.dumps({"command": "seq evaluate", "status": "complete"}),
            )
            or ["seq", "evaluate", "run"]
        ),
    ),
    BadInput(
        "predict on sequences of another length",
        lambda d: [
            "seq",
            "predict",
            _run(d),
            _random_fasta(d, "new.fa", length=30),
            "--out",
            "p.tsv",
        ],  # fmt: skip
    ),
    BadInput(
        "interpret sequences of another length",
        lambda d: [
            "seq",
            "interpret",
            _run(d),
            "--data",
            _random_fasta(d, "a.fa", length=30),
            "--labels",
            "a",
        ],  # fmt: skip
    ),
    BadInput(
        "predict with a run directory that does not exist",
        lambda d: ["seq", "predict", "runs/none", _random_fasta(d, "new.fa"), "--out", "p.tsv"],
    ),
    BadInput(
        "predict with a model folder that is not one",
        lambda d: (
            (d / "model").mkdir()
            or ["seq", "predict", "model", _random_fasta(d, "new.fa"), "--out", "p.tsv"]
        ),
    ),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One tiny training run (one step) that the cases reading a run copy."""
    from genoformer.seq import api

    folder = tmp_path_factory.mktemp("seq_bad_inputs")
    inputs = [_random_fasta(folder, "a.fa"), _random_fasta(folder, "b.fa", seed=1)]
    api.train(inputs, out=folder / "run", epochs=1, batch_size=64, device="cpu")
    SHARED["run"] = folder / "run"
    return SHARED["run"]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case, trained, tmp_path, capsys):
    check_case(case, tmp_path, capsys, "seq")


def test_catalogue():
    check_catalogue(CASES, "seq")


def test_predict_reads_a_table_without_targets(trained, tmp_path):
    """Columns beside the sequences (text among numbers) are no targets to `seq predict`."""
    from genoformer.seq import api

    rows = "".join(f"s{i}\tACGTACGTACGTACGTACG{'ACGT'[i]}\tnote {i}\t{i}\n" for i in range(4))
    table = _table(tmp_path, "id\tsequence\tcomment\tscore\n" + rows)
    result = api.predict(trained, table, out=tmp_path / "p.tsv", device="cpu")
    assert result.metrics["n"] == 4
    assert list(result.outputs["predictions"].read_text().splitlines()[0].split("\t")[:3]) == [
        "id",
        "sequence",
        "predicted",
    ]
