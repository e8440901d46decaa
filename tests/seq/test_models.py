"""Every seq architecture: shapes, losses, save/load, and training end to end on a tiny task."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genoformer.engine.errors import InputError
from genoformer.seq import api
from genoformer.seq.encoding import one_hot
from genoformer.seq.models import SeqModelConfig, SequenceModel
from genoformer.seq.tasks import teaching_task

ARCHITECTURES = [
    ("linear", {}),
    ("cnn", {}),
    ("deep_cnn", {"n_conv_layers": 2}),
    ("transformer", {"kmer": 1, "n_layers": 1}),
    ("transformer", {"kmer": 3, "n_layers": 1}),
]


def x_batch(n: int = 6, length: int = 20) -> torch.Tensor:
    rng = np.random.default_rng(0)
    sequences = ["".join(rng.choice(list("ACGTN"), length)) for _ in range(n)]
    return torch.from_numpy(one_hot(sequences))


@pytest.mark.parametrize(("architecture", "options"), ARCHITECTURES)
def test_shapes_losses_and_round_trip(architecture, options, tmp_path):
    torch.manual_seed(0)
    config = SeqModelConfig(
        architecture=architecture, task="classification", n_outputs=3, seq_length=20, **options
    )
    model = SequenceModel(config).eval()
    x = x_batch()
    out = model(x, labels=torch.tensor([0, 1, 2, 0, 1, 2]))
    assert out.logits.shape == (6, 3)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    model.save_pretrained(tmp_path)
    again = SequenceModel.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(again(x).logits, out.logits)


def test_regression_predictions_are_in_target_units():
    config = SeqModelConfig(
        architecture="linear", n_outputs=1, seq_length=20, target_mean=[50.0], target_std=[5.0]
    )
    model = SequenceModel(config).eval()
    torch.nn.init.zeros_(model.linear.weight)
    torch.nn.init.zeros_(model.linear.bias)
    out = model(x_batch(), labels=torch.full((6, 1), 55.0))
    torch.testing.assert_close(out.logits, torch.full((6, 1), 50.0))
    torch.testing.assert_close(out.loss, torch.tensor(1.0))  # (55 - 50) / 5 squared


def test_bad_configurations_are_input_errors():
    with pytest.raises(InputError, match="unknown architecture"):
        SeqModelConfig(architecture="rnn")
    with pytest.raises(InputError, match="odd width"):
        SequenceModel(SeqModelConfig(architecture="cnn", filter_width=4))
    with pytest.raises(InputError, match="fixed length"):
        SequenceModel(SeqModelConfig(architecture="linear"))


@pytest.mark.parametrize("architecture", ["deep_cnn", "transformer"])
def test_train_and_interpret_every_architecture(architecture, tmp_path):
    data = teaching_task(1_500, seed=4)
    options = {"n_layers": 1} if architecture == "transformer" else {"n_conv_layers": 2}
    result = api.train(
        data,
        out=tmp_path,
        model=architecture,
        model_options=options,
        epochs=1,
        eval_every=5,
        device="cpu",
    )
    assert np.isfinite(result.metrics["r2"])
    explained = api.interpret(tmp_path, match_jaspar=False, n_sequences=1, device="cpu")
    assert (tmp_path / "interpretation" / "ism.npy").exists()
    assert ("filters" in explained.outputs) == (architecture != "transformer")
