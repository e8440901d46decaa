"""Real ChIP-seq peaks (../shared/data/seq/oct4_mafk): a CNN tells Oct4 from MafK peaks and
its filters match the POU (Oct4) and MAF motifs in JASPAR."""

from __future__ import annotations

import pandas as pd
import pytest

from genoformer.engine.errors import InputError
from genoformer.seq import api
from tests.conftest import shared_data

LABELS = ["oct4", "mafk"]


@pytest.fixture(scope="module")
def oct4_mafk_run(tmp_path_factory):
    folder = shared_data("seq/oct4_mafk")
    out = tmp_path_factory.mktemp("oct4_mafk")
    trained = api.train(
        [folder / "sample.fa", folder / "sample2.fa"],
        labels=LABELS,
        out=out,
        model="cnn",
        model_options={"n_filters": 64, "filter_width": 19},
        epochs=10,
        batch_size=64,
        eval_every=100,
        patience=3,
        seed=0,
        device="cpu",
    )
    return folder, out, trained


def test_held_out_auroc(oct4_mafk_run):
    folder, out, trained = oct4_mafk_run
    held_out = api.evaluate(
        out, data=[folder / "sample_test.fa", folder / "sample2_test.fa"], labels=LABELS
    )
    print(
        f"Oct4 vs MafK: test-split AUROC {trained.metrics['auroc']:.3f}, "
        f"held-out files AUROC {held_out.metrics['auroc']:.3f} "
        f"(accuracy {held_out.metrics['accuracy']:.3f}, n={held_out.metrics['n']})"
    )
    assert held_out.metrics["n"] == 200
    assert trained.metrics["auroc"] >= 0.85
    assert held_out.metrics["auroc"] >= 0.85


def test_filters_match_pou_and_maf_motifs(oct4_mafk_run):
    _, out, _ = oct4_mafk_run
    result = api.interpret(out, n_sequences=2, device="cpu")
    filters = result.outputs["filters"]
    table = pd.read_csv(filters, sep="\t")
    significant = table[table["q_value"] < 0.05]
    families = significant["target_family"].fillna("").str.lower()
    print(significant.sort_values("q_value")[["filter", "consensus", "target_name", "q_value"]])
    assert families.str.contains("pou").any(), "no filter matches a POU-family (Oct4) motif"
    assert families.str.contains("maf").any(), "no filter matches a MAF-family motif"


def test_evaluating_on_a_label_the_model_does_not_have_is_refused(oct4_mafk_run):
    folder, out, _ = oct4_mafk_run
    # The second file labelled "ctcf": once mapped silently onto the model's first class.
    with pytest.raises(InputError, match=r"label 'ctcf' is not one of the model's classes"):
        api.evaluate(
            out,
            data=[folder / "sample_test.fa", folder / "sample2_test.fa"],
            labels=["oct4", "ctcf"],
        )
    # The same files with the labels in the other order are numbered as the model numbers them.
    swapped = api.evaluate(
        out,
        data=[folder / "sample2_test.fa", folder / "sample_test.fa"],
        labels=["mafk", "oct4"],
        out=out / "swapped",
    )
    files = [folder / "sample_test.fa", folder / "sample2_test.fa"]
    original = api.evaluate(out, data=files, labels=LABELS, out=out / "original")
    assert swapped.metrics["auroc"] == pytest.approx(original.metrics["auroc"], abs=1e-9)
