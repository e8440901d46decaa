"""The command line end to end on small data: train, evaluate, predict, interpret, demo."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from genoformer.cli import main
from genoformer.seq.tasks import teaching_task


def run_cli(*args: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*map(str, args)])
    assert exit_info.value.code in (0, None)


@pytest.fixture(scope="module")
def teaching_table(tmp_path_factory):
    data = teaching_task(3_000, seed=1)
    path = tmp_path_factory.mktemp("cli") / "teaching.tsv"
    pd.DataFrame({"sequence": data.sequences, "score": data.targets[:, 0]}).to_csv(
        path, sep="\t", index=False
    )
    return path


@pytest.fixture(scope="module")
def trained_run(teaching_table, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    run_cli(
        "seq", "train", teaching_table, "--out", out, "--model", "cnn", "--epochs", "2",
        "--eval-every", "20", "--device", "cpu",
    )  # fmt: skip
    return out


def test_train_writes_a_complete_run(trained_run):
    manifest = json.loads((trained_run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["command"] == "seq train"
    assert {"model", "loss_table", "test_predictions", "test_parity"} <= set(manifest["outputs"])
    assert (trained_run / "model" / "model.safetensors").exists()
    assert manifest["results"]["test"]["n"] == 300
    assert (trained_run / "test_worst.html").stat().st_size > 0


def test_evaluate_predict_and_interpret(trained_run, teaching_table, tmp_path):
    run_cli("seq", "evaluate", trained_run, "--out", tmp_path / "eval", "--device", "cpu")
    metrics = json.loads((tmp_path / "eval" / "evaluation_metrics.json").read_text())
    test_metrics = json.loads((trained_run / "test_metrics.json").read_text())
    assert metrics["r2"] == pytest.approx(test_metrics["r2"], rel=1e-6)

    fasta = tmp_path / "new.fa"
    fasta.write_text(">a\nTATTATAA\n>b\nGCGGCGCC\n")
    run_cli("seq", "predict", trained_run, fasta, "--out", tmp_path / "pred.tsv")
    predictions = pd.read_csv(tmp_path / "pred.tsv", sep="\t")
    assert predictions["id"].tolist() == ["a", "b"]
    assert predictions["predicted_score"].iloc[0] > predictions["predicted_score"].iloc[1]

    run_cli(
        "seq", "interpret", trained_run, "--out", tmp_path / "why", "--no-match-jaspar",
        "--n-sequences", "2", "--device", "cpu",
    )  # fmt: skip
    for name in ("filter_heatmaps.png", "filter_logos.png", "filters.tsv", "ism.png"):
        assert (tmp_path / "why" / name).stat().st_size > 0


def test_evaluate_refuses_sequences_without_targets(trained_run, tmp_path, capsys):
    fasta = tmp_path / "new.fa"
    fasta.write_text(">a\nTATTATAA\n>b\nGCGGCGCC\n")
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "seq",
                "evaluate",
                str(trained_run),
                "--data",
                str(fasta),
                "--out",
                str(tmp_path / "e"),
            ]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{fasta}: the sequences have no labels or targets" in err and "--targets" in err


def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "bad.fa"
    bad.write_text(">one\nACGT\n>two\nACXT\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["seq", "train", str(bad), "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert "bad.fa" in err and "two" in err and "position 3" in err and "fix" in err


def test_unknown_model_is_bad_input(teaching_table, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["seq", "train", str(teaching_table), "--out", str(tmp_path), "--model", "rnn"])
    assert exit_info.value.code == 2
    assert "unknown architecture 'rnn'" in capsys.readouterr().err


def test_demo_quick(tmp_path):
    run_cli("demo", "--quick", "--out", tmp_path / "demo")
    manifest = json.loads((tmp_path / "demo" / "manifest.json").read_text())
    results = manifest["results"]["seq_teaching_task"]
    assert results["cnn"]["r2"] > results["linear"]["r2"]
    assert (tmp_path / "demo" / "seq" / "comparison_r2.png").exists()
    assert (tmp_path / "demo" / "seq" / "cnn" / "interpretation" / "filter_logos.png").exists()
    gwas = manifest["results"]["gwas"]
    assert gwas["variants_tested"] > 0 and gwas["causal_in_top"] >= 1
    for name in ("assoc.tsv", "manhattan.png", "qq.html"):
        assert (tmp_path / "demo" / "gwas" / "assoc" / name).exists()
    model = manifest["results"]["gwas_model"]
    assert {"transformer", "ridge", "boosting", "mlp"} <= set(model["test_r2"])
    assert model["causal"] == 14 and model["decoys"] > 0
    for name in ("model/comparison.png", "explain/importance.tsv", "explain/pairs_heatmap.html"):
        assert (tmp_path / "demo" / "gwas" / name).exists()
    sc = manifest["results"]["sc"]
    assert sc["heldout_loss"] < sc["frequency_loss"]
    assert sc["cell_type_knn_accuracy"] > 0.4  # five types: chance is 0.2
    assert (tmp_path / "demo" / "sc" / "pretrain" / "loss_curve.png").exists()
    assert (tmp_path / "demo" / "sc" / "embed" / "cell_embeddings.parquet").exists()
    assert (tmp_path / "demo" / "sc" / "embed" / "figures" / "umap.html").exists()
