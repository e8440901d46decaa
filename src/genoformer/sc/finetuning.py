"""The cell classifier and the fine-tuning controls: frozen layers, layer-wise learning-rate
decay, LoRA adapters.

:class:`CellClassifier` is a Geneformer-compatible BERT encoder with a linear head over one
vector per cell: the ``<cls>`` token's hidden state (``pooling="cls"``, V2 corpora) or the
mean over the cell's gene tokens (``pooling="mean"``, V1 corpora, whose first token is just
the top-ranked gene). It is built from any Geneformer or genoformer checkpoint with the
checkpoint's encoder weights loaded (Geneformer's multi-task classifier builds its encoder
from the config and never loads them), and saves as a Hugging Face model directory whose
``config.json`` holds ``id2label`` in sorted label order.
"""

from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from genoformer.engine.errors import InputError

__all__ = [
    "CLASSIFIER_ARCHITECTURE",
    "POOLINGS",
    "CellClassifier",
    "add_lora",
    "classifier_config",
    "freeze_layers",
    "layer_decay_groups",
    "merged",
    "parameter_counts",
]

#: What a classifier's config.json names as its architecture.
CLASSIFIER_ARCHITECTURE = "CellClassifier"
POOLINGS = ("cls", "mean")
#: Modules LoRA adapts (BERT's attention projections) and the ones it trains whole.
LORA_TARGETS = ["query", "key", "value"]
LORA_TRAINED = ["classifier"]


class CellClassifier(BertPreTrainedModel):
    """BERT encoder + dropout + linear head over a pooled cell vector.

    The config carries ``pooling`` (``"cls"`` or ``"mean"``), ``special_token_ids`` (left
    out of the mean: ``<cls>``, ``<eos>``), ``num_labels`` and ``id2label``.
    """

    # Each batch's loss is its own mean: batches and processes weigh equally.
    accepts_loss_kwargs = False

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        dropout = getattr(config, "classifier_dropout", None)
        self.dropout = nn.Dropout(config.hidden_dropout_prob if dropout is None else dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def pool(self, hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask: Any) -> Any:
        """One vector per cell: ``<cls>``, or the mean over its gene tokens."""
        if getattr(self.config, "pooling", "mean") == "cls":
            return hidden[:, 0, :]
        genes = torch.ones_like(input_ids, dtype=torch.bool)
        if attention_mask is not None:
            genes &= attention_mask.bool()
        for token in getattr(self.config, "special_token_ids", None) or ():
            genes &= input_ids != token
        weights = genes.to(hidden.dtype)
        total = weights.sum(1, keepdim=True).clamp(min=1.0)
        return torch.bmm(weights[:, None, :], hidden)[:, 0, :] / total

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        kwargs.pop("num_items_in_batch", None)
        hidden = self.bert(
            input_ids, attention_mask=attention_mask, return_dict=True, **kwargs
        ).last_hidden_state
        logits = self.classifier(self.dropout(self.pool(hidden, input_ids, attention_mask)))
        loss = None if labels is None else F.cross_entropy(logits.float(), labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


def classifier_config(
    encoder_config: BertConfig,
    classes: list[str],
    *,
    pooling: str,
    special_token_ids: list[int],
    label: str,
    vocabulary: str,
) -> BertConfig:
    """The encoder's config with the head's fields: labels in sorted order, pooling."""
    config = BertConfig.from_dict(encoder_config.to_dict())
    config.num_labels = len(classes)
    config.id2label = dict(enumerate(classes))
    config.label2id = {name: i for i, name in enumerate(classes)}
    config.pooling = pooling
    config.special_token_ids = [int(t) for t in special_token_ids]
    config.cell_attribute = label
    config.vocabulary = vocabulary
    config.architectures = [CLASSIFIER_ARCHITECTURE]
    config.problem_type = "single_label_classification"
    config._attn_implementation = "sdpa"
    return config


def freeze_layers(model: CellClassifier, n_layers: int) -> None:
    """Freeze the embeddings and the first ``n_layers`` encoder layers (0: train all)."""
    layers = model.bert.encoder.layer
    if not 0 <= n_layers <= len(layers):
        raise InputError(
            f"freeze_layers is {n_layers} for a model of {len(layers)} layers",
            where="freeze_layers",
            fix=f"use 0 (train every layer) to {len(layers)} (train the head alone)",
        )
    if n_layers == 0:
        return
    for module in [model.bert.embeddings, *list(layers)[:n_layers]]:
        for parameter in module.parameters():
            parameter.requires_grad_(False)


def _depth(name: str, n_layers: int) -> int:
    """Depth from the top: 0 the head, 1 the last encoder layer, ``n_layers + 1`` the
    embeddings."""
    if ".embeddings." in f".{name}":
        return n_layers + 1
    found = re.search(r"encoder\.layer\.(\d+)\.", name)
    return n_layers - int(found.group(1)) if found else 0


def layer_decay_groups(
    model: nn.Module,
    *,
    learning_rate: float,
    weight_decay: float,
    layer_decay: float,
    n_layers: int,
) -> list[dict[str, Any]]:
    """AdamW parameter groups whose learning rate is ``learning_rate * layer_decay ** depth``
    (depth from the top: the head 0, the last layer 1, the embeddings ``n_layers + 1``), as
    the seed's MindSpore configuration and ELECTRA's fine-tuning do. Biases and LayerNorm
    weights get no weight decay, as in the Trainer's own groups."""
    if not 0 < layer_decay <= 1:
        raise InputError(
            f"layer_decay is {layer_decay}",
            where="layer_decay",
            fix="use a factor in (0, 1], e.g. 0.65 (1: every layer at the same rate)",
        )
    from transformers.trainer_pt_utils import get_parameter_names

    decayed = {n for n in get_parameter_names(model, [nn.LayerNorm]) if "bias" not in n}
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        depth = _depth(name, n_layers)
        decay = name in decayed
        group = groups.setdefault(
            (depth, decay),
            {
                "params": [],
                "lr": learning_rate * layer_decay**depth,
                "weight_decay": weight_decay if decay else 0.0,
            },
        )
        group["params"].append(parameter)
    return [groups[key] for key in sorted(groups)]


def add_lora(model: CellClassifier, *, rank: int, alpha: float, dropout: float) -> nn.Module:
    """The model with LoRA adapters (peft) on its attention projections: only the adapters
    and the head train."""
    if rank < 1:
        raise InputError(f"lora_rank is {rank}", where="lora_rank", fix="use 1 or more, e.g. 8")
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=LORA_TARGETS,
        modules_to_save=LORA_TRAINED,
    )
    return get_peft_model(model, config)


def merged(model: nn.Module) -> CellClassifier:
    """A plain :class:`CellClassifier`: LoRA adapters folded into the weights (peft's
    ``merge_and_unload``); any other model as it is."""
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload()
    return model  # type: ignore[return-value]


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Trainable and total parameters (a tied weight counted once)."""
    seen: dict[int, torch.nn.Parameter] = {}
    for parameter in model.parameters():
        seen.setdefault(id(parameter), parameter)
    total = sum(p.numel() for p in seen.values())
    trainable = sum(p.numel() for p in seen.values() if p.requires_grad)
    return {"trainable_parameters": int(trainable), "total_parameters": int(total)}
