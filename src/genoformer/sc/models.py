"""Geneformer-compatible models: presets, building a ``BertForMaskedLM``, loading checkpoints.

Geneformer's models are plain Hugging Face ``BertForMaskedLM`` (ReLU, absolute positions,
the output layer tied to the input embeddings), so a Geneformer checkpoint directory loads
here as it is, and a model saved here loads in Geneformer. The presets carry the published
checkpoints' architectures (their ``config.json`` values; ``tests/sc/test_models.py`` checks
them against the configs in ``../shared/data/geneformer/configs``) plus small ones for CPU
work. Attention runs through PyTorch's scaled-dot-product kernels (SDPA).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForMaskedLM, BertModel
from transformers.modeling_outputs import MaskedLMOutput
from transformers.utils import logging as hf_logging

from genoformer.engine.checkpoints import checkpoint_config, load_pretrained
from genoformer.engine.errors import InputError
from genoformer.engine.paths import require_path
from genoformer.engine.runs import write_json
from genoformer.sc.masking import IGNORE
from genoformer.sc.vocabulary import GeneVocabulary

__all__ = [
    "PRESETS",
    "MaskedGeneLM",
    "as_masked_gene_lm",
    "build_model",
    "check_vocabulary",
    "load_model",
    "model_config",
    "preset_names",
]

_V1 = {"vocab_size": 25426, "max_position_embeddings": 2048}
_V2 = {"vocab_size": 20275, "max_position_embeddings": 4096}
_PUBLISHED_DROPOUT = {"hidden_dropout_prob": 0.02, "attention_probs_dropout_prob": 0.02}
_V2_DROPOUT = {"hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}


def _shape(layers: int, hidden: int, heads: int, intermediate: int) -> dict[str, int]:
    return {
        "num_hidden_layers": layers,
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "intermediate_size": intermediate,
    }


#: Architecture of each published checkpoint (as its config.json) and of small CPU presets.
#: The small ones take their vocabulary size and input size from the vocabulary they are
#: built with.
PRESETS: dict[str, dict[str, Any]] = {
    "gf-6L-30M-i2048": {**_shape(6, 256, 4, 512), **_V1, **_PUBLISHED_DROPOUT},
    "gf-12L-30M-i2048": {**_shape(12, 512, 8, 1024), **_V1, **_PUBLISHED_DROPOUT},
    "gf-12L-95M-i4096": {**_shape(12, 512, 8, 1024), **_V2, **_PUBLISHED_DROPOUT},
    "gf-20L-95M-i4096": {**_shape(20, 896, 14, 1792), **_V2, **_PUBLISHED_DROPOUT},
    "V2-104M": {**_shape(12, 768, 12, 3072), **_V2, **_V2_DROPOUT},
    "V2-316M": {**_shape(18, 1152, 18, 4608), **_V2, **_V2_DROPOUT},
    "tiny": {**_shape(2, 128, 4, 256), **_PUBLISHED_DROPOUT},
    "small": {**_shape(4, 256, 4, 512), **_PUBLISHED_DROPOUT},
}
#: What every Geneformer config shares.
_COMMON = {
    "hidden_act": "relu",
    "layer_norm_eps": 1e-12,
    "initializer_range": 0.02,
    "type_vocab_size": 2,
    "position_embedding_type": "absolute",
    "pad_token_id": 0,
    "tie_word_embeddings": True,
}


def preset_names() -> list[str]:
    """The preset names, published checkpoints first."""
    return list(PRESETS)


def model_config(
    preset: str, vocabulary: GeneVocabulary | None = None, **overrides: Any
) -> BertConfig:
    """The ``BertConfig`` of a preset, sized for ``vocabulary`` when one is given.

    A published preset must fit the vocabulary (its size and input size); a small preset
    takes both from it. ``overrides`` replace any config field (e.g. ``num_hidden_layers``).
    """
    if preset not in PRESETS:
        raise InputError(
            f"unknown model preset {preset!r}",
            fix="choose one of: " + ", ".join(PRESETS),
        )
    fields = {**_COMMON, **PRESETS[preset]}
    if vocabulary is not None:
        sized = {"vocab_size": len(vocabulary), "max_position_embeddings": vocabulary.input_size}
        for key, wanted in sized.items():
            if key in PRESETS[preset] and fields[key] != wanted:
                raise InputError(
                    f"preset {preset} has {key}={fields[key]:,} but the {vocabulary.name} "
                    f"vocabulary needs {wanted:,}",
                    fix="use a V1 preset (gf-*-i2048) with V1 dictionaries and a V2 preset "
                    "(*-i4096, V2-*) with V2 dictionaries, or a small preset (tiny, small)",
                )
        fields.update(sized)
        if vocabulary.pad_id is not None:
            fields["pad_token_id"] = vocabulary.pad_id
    elif "vocab_size" not in fields:
        raise InputError(
            f"preset {preset} takes its vocabulary size from a vocabulary",
            fix="pass the vocabulary (V1, V2 or a vocabulary file) the model will read",
        )
    fields.update(overrides)
    config = BertConfig(**fields)
    config.architectures = ["BertForMaskedLM"]
    return config


def build_model(
    config: str | BertConfig,
    vocabulary: GeneVocabulary | None = None,
    *,
    seed: int | None = None,
) -> BertForMaskedLM:
    """A freshly initialised ``BertForMaskedLM`` from a preset name or a config."""
    if isinstance(config, str):
        config = model_config(config, vocabulary)
    elif vocabulary is not None:
        check_vocabulary(config, vocabulary)
    config._attn_implementation = "sdpa"
    if seed is not None:
        torch.manual_seed(seed)
    return BertForMaskedLM(config)


def check_vocabulary(
    config: BertConfig, vocabulary: GeneVocabulary, source: str | os.PathLike | None = None
) -> None:
    """Raise when a model cannot read cells tokenized with ``vocabulary``."""
    if config.vocab_size != len(vocabulary):
        raise InputError(
            f"the model's vocabulary has {config.vocab_size:,} tokens but the "
            f"{vocabulary.name} dictionary has {len(vocabulary):,}",
            file=source,
            where="config.json vocab_size",
            fix="use the dictionaries the model was trained with (V1 = gc30M for gf-*-i2048 "
            "models, V2 = gc104M for the others)",
        )


_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Loading an MLM checkpoint into the encoder alone makes transformers print a report of
    the (expected) unused head weights; keep only real errors."""
    logger = hf_logging.get_logger("transformers")
    level = logger.level
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        logger.setLevel(level or logging.WARNING)
        if bars:
            hf_logging.enable_progress_bar()


def _check_checkpoint(path: Path) -> BertConfig:
    if not path.is_dir():
        raise InputError(
            "no such model directory",
            file=path,
            fix="pass a folder with config.json and model.safetensors (or pytorch_model.bin)",
        )
    require_path(
        path / "config.json",
        "no config.json in the model directory",
        file=path,
        fix="pass a Geneformer checkpoint folder or one written by genoformer",
    )
    if not any((path / name).exists() for name in _WEIGHTS):
        raise InputError(
            "no weights in the model directory (looked for " + ", ".join(_WEIGHTS) + ")",
            file=path,
            fix="copy the checkpoint's model.safetensors or pytorch_model.bin next to its "
            "config.json",
        )
    checkpoint_config(path)
    config = BertConfig.from_pretrained(path)
    if config.model_type != "bert":
        raise InputError(
            f"model_type is {config.model_type!r}, expected 'bert'",
            file=path / "config.json",
            fix="pass a Geneformer (BERT) checkpoint",
        )
    return config


def load_model(
    path: str | os.PathLike,
    *,
    vocabulary: GeneVocabulary | None = None,
    encoder_only: bool = False,
    dtype: torch.dtype = torch.float32,
) -> BertForMaskedLM | BertModel:
    """Load a Geneformer checkpoint directory (or one written by genoformer).

    ``model.safetensors`` is read as it is; ``pytorch_model.bin`` only with
    ``torch.load(weights_only=True)`` (which transformers uses), so a checkpoint cannot run
    code. The output layer is tied to the input embeddings (Geneformer's files store it
    once). With ``encoder_only`` the masked-language-model head is not built: embeddings
    need the hidden states only, and the head's vocabulary-sized output is most of the
    memory of a forward pass.
    """
    path = Path(path)
    config = _check_checkpoint(path)
    if vocabulary is not None:
        check_vocabulary(config, vocabulary, path / "config.json")
    cls = BertModel if encoder_only else BertForMaskedLM
    kwargs: dict[str, Any] = {"attn_implementation": "sdpa", "dtype": dtype}
    if encoder_only:
        kwargs["add_pooling_layer"] = False
    with _quiet_transformers():
        model, info = load_pretrained(cls, path, output_loading_info=True, **kwargs)
    missing = [k for k in info["missing_keys"] if "position_ids" not in k]
    if missing:
        raise InputError(
            f"the checkpoint lacks {len(missing)} weights ({', '.join(sorted(missing)[:3])}, ...)",
            file=path,
            fix="pass a complete BertForMaskedLM checkpoint",
        )
    return model.eval()


class MaskedGeneLM(BertForMaskedLM):
    """``BertForMaskedLM`` whose loss computes the output layer at the labelled positions only.

    Same weights, same loss (mean cross-entropy over the positions whose label is not
    -100); its ``logits`` are then one row per labelled position, in row-major order.
    Without labels it is ``BertForMaskedLM``. It saves as a ``BertForMaskedLM``.
    """

    # Each batch's loss is its own mean, as Geneformer trains: the Trainer then averages
    # batches (gradient accumulation) and processes (DDP) with equal weights, and reports
    # held-out losses that do not depend on how the cells were shared out.
    accepts_loss_kwargs = False

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> MaskedLMOutput:
        if labels is None:
            return super().forward(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                position_ids=position_ids,
                **kwargs,
            )
        hidden = self.bert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            return_dict=True,
            **kwargs,
        ).last_hidden_state
        chosen = labels != IGNORE
        logits = self.cls(hidden[chosen])
        loss = F.cross_entropy(logits.float(), labels[chosen])
        return MaskedLMOutput(loss=loss, logits=logits)

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        super().save_pretrained(save_directory, *args, **kwargs)
        # transformers names the saved architecture after the class; the weights and the
        # model are BertForMaskedLM's, and tools that read the name should see that.
        config = Path(save_directory) / "config.json"
        if kwargs.get("is_main_process", True) and config.exists():
            document = json.loads(config.read_text())
            document["architectures"] = ["BertForMaskedLM"]
            write_json(config, document)


def as_masked_gene_lm(model: BertForMaskedLM) -> MaskedGeneLM:
    """The model as a :class:`MaskedGeneLM` (in place: the same object and weights)."""
    # The subclass adds a forward and nothing else (no parameters, no state), so the model
    # object becomes one in place rather than being built and loaded a second time.
    model.__class__ = MaskedGeneLM
    return model  # type: ignore[return-value]
