"""The classifiers (cell, gene, multi-task cell) and the fine-tuning controls: frozen layers,
layer-wise learning-rate decay, LoRA adapters.

:class:`CellClassifier` is a Geneformer-compatible BERT encoder with a linear head over one
vector per cell: the ``<cls>`` token's hidden state (``pooling="cls"``, V2 corpora) or the
mean over the cell's gene tokens (``pooling="mean"``, V1 corpora, whose first token is just
the top-ranked gene). It is built from any Geneformer or genoformer checkpoint with the
checkpoint's encoder weights loaded (Geneformer's multi-task classifier builds its encoder
from the config and never loads them), and saves as a Hugging Face model directory whose
``config.json`` holds ``id2label`` in sorted label order.

:class:`GeneClassifier` is the same encoder with a linear head on every token (Geneformer's
gene classifier, ``BertForTokenClassification``): tokens labelled ``-100`` (genes outside the
classes, padding) are ignored by the loss. :class:`MultiTaskClassifier` is one encoder with
one head per cell attribute over the same pooled vector; each head is saved as a
:class:`CellClassifier` of its own (:meth:`MultiTaskClassifier.task_classifier`).
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput, TokenClassifierOutput

from genoformer.engine.errors import InputError

__all__ = [
    "CLASSIFIER_ARCHITECTURE",
    "POOLINGS",
    "CellClassifier",
    "GeneClassifier",
    "MultiTaskClassifier",
    "add_lora",
    "apply_controls",
    "pool_cells",
    "train_settings",
    "classifier_config",
    "freeze_layers",
    "layer_decay_groups",
    "merged",
    "new_classifier",
    "parameter_counts",
    "special_token_ids",
]

#: What a classifier's config.json names as its architecture.
CLASSIFIER_ARCHITECTURE = "CellClassifier"
GENE_CLASSIFIER_ARCHITECTURE = "GeneClassifier"
MULTITASK_ARCHITECTURE = "MultiTaskClassifier"
#: Every architecture a fine-tuning run saves (refused where a pretrained model is expected).
FINETUNED_ARCHITECTURES = (
    CLASSIFIER_ARCHITECTURE,
    GENE_CLASSIFIER_ARCHITECTURE,
    MULTITASK_ARCHITECTURE,
)
POOLINGS = ("cls", "mean")
#: Modules LoRA adapts (BERT's attention projections); the heads (``classifier``, or
#: ``heads.<k>`` of a multi-task model) train whole.
LORA_TARGETS = ["query", "key", "value"]
IGNORED = -100


def _head_dropout(config: BertConfig) -> nn.Dropout:
    dropout = getattr(config, "classifier_dropout", None)
    return nn.Dropout(config.hidden_dropout_prob if dropout is None else dropout)


def pool_cells(
    config: BertConfig, hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask: Any
) -> torch.Tensor:
    """One vector per cell: ``<cls>``, or the mean over its gene tokens (``config.pooling``;
    ``config.special_token_ids`` are left out of the mean)."""
    if getattr(config, "pooling", "mean") == "cls":
        return hidden[:, 0, :]
    genes = torch.ones_like(input_ids, dtype=torch.bool)
    if attention_mask is not None:
        genes &= attention_mask.bool()
    for token in getattr(config, "special_token_ids", None) or ():
        genes &= input_ids != token
    weights = genes.to(hidden.dtype)
    total = weights.sum(1, keepdim=True).clamp(min=1.0)
    return torch.bmm(weights[:, None, :], hidden)[:, 0, :] / total


class _EncoderClassifier(BertPreTrainedModel):
    """BERT encoder + dropout, then the head(s) of a subclass (:meth:`head_output`)."""

    # Each batch's loss is its own mean: batches and processes weigh equally.
    accepts_loss_kwargs = False

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = _head_dropout(config)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput | TokenClassifierOutput:
        kwargs.pop("num_items_in_batch", None)
        hidden = self.bert(
            input_ids, attention_mask=attention_mask, return_dict=True, **kwargs
        ).last_hidden_state
        return self.head_output(hidden, input_ids, attention_mask, labels)

    def head_output(
        self, hidden: torch.Tensor, input_ids: Any, attention_mask: Any, labels: Any
    ) -> SequenceClassifierOutput | TokenClassifierOutput:
        """The logits (and the loss, given ``labels``) from the encoder's last hidden states."""
        raise NotImplementedError


class _OneHeadClassifier(_EncoderClassifier):
    """The encoder and one linear head of ``config.num_labels`` classes."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()


class CellClassifier(_OneHeadClassifier):
    """BERT encoder + dropout + linear head over a pooled cell vector.

    The config carries ``pooling`` (``"cls"`` or ``"mean"``), ``special_token_ids`` (left
    out of the mean: ``<cls>``, ``<eos>``), ``num_labels`` and ``id2label``.
    """

    def pool(self, hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask: Any) -> Any:
        """One vector per cell: ``<cls>``, or the mean over its gene tokens."""
        return pool_cells(self.config, hidden, input_ids, attention_mask)

    def head_output(
        self, hidden: torch.Tensor, input_ids: Any, attention_mask: Any, labels: Any
    ) -> SequenceClassifierOutput:
        logits = self.classifier(self.dropout(self.pool(hidden, input_ids, attention_mask)))
        loss = None if labels is None else F.cross_entropy(logits.float(), labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


class GeneClassifier(_OneHeadClassifier):
    """BERT encoder + dropout + linear head on every token: a class for each gene of a cell.

    Tokens labelled ``-100`` (genes outside the classes, the held-out genes of a fold,
    padding, ``<cls>``/``<eos>``) are ignored by the loss.
    """

    def head_output(
        self, hidden: torch.Tensor, input_ids: Any, attention_mask: Any, labels: Any
    ) -> TokenClassifierOutput:
        logits = self.classifier(self.dropout(hidden))
        loss = None
        if labels is not None:
            flat = logits.float().flatten(0, 1)
            loss = F.cross_entropy(flat, labels.flatten(), ignore_index=IGNORED)
        return TokenClassifierOutput(loss=loss, logits=logits)


class MultiTaskClassifier(_EncoderClassifier):
    """One BERT encoder, one linear head per task over the same pooled cell vector.

    The config carries ``tasks`` (each task's attribute and sorted classes) and
    ``task_weights``; the loss is the weighted mean of the tasks' cross-entropies. The
    logits are the tasks' logits side by side (``(cells, sum of the class counts)``), so
    that one prediction pass serves every task.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.heads = nn.ModuleList(
            nn.Linear(config.hidden_size, len(task["classes"])) for task in config.tasks
        )
        self.post_init()

    def head_output(
        self, hidden: torch.Tensor, input_ids: Any, attention_mask: Any, labels: Any
    ) -> SequenceClassifierOutput:
        pooled = self.dropout(pool_cells(self.config, hidden, input_ids, attention_mask))
        logits = [head(pooled) for head in self.heads]
        loss = None
        if labels is not None:
            weights = [float(w) for w in self.config.task_weights]
            losses = [
                w * F.cross_entropy(x.float(), labels[:, t])
                for t, (w, x) in enumerate(zip(weights, logits, strict=True))
            ]
            loss = torch.stack(losses).sum() / sum(weights)
        return SequenceClassifierOutput(loss=loss, logits=torch.cat(logits, dim=1))

    def task_classifier(self, task: int) -> CellClassifier:
        """Task ``task``'s head on the shared encoder, as a :class:`CellClassifier` of its own
        (what ``sc predict`` and ``CellClassifier.from_pretrained`` load)."""
        spec = self.config.tasks[task]
        config = classifier_config(
            self.config,
            list(spec["classes"]),
            pooling=self.config.pooling,
            special_token_ids=list(self.config.special_token_ids or ()),
            label=spec["attribute"],
            vocabulary=self.config.vocabulary,
        )
        for key in ("tasks", "task_weights"):
            config.__dict__.pop(key, None)
        single = CellClassifier(config)
        single.bert.load_state_dict(self.bert.state_dict())
        single.classifier.load_state_dict(self.heads[task].state_dict())
        return single.to(next(self.parameters()).device)


def classifier_config(
    encoder_config: BertConfig,
    classes: list[str],
    *,
    pooling: str,
    special_token_ids: list[int],
    label: str,
    vocabulary: str,
    architecture: str = CLASSIFIER_ARCHITECTURE,
) -> BertConfig:
    """The encoder's config with the head's fields: labels in sorted order, pooling (a gene
    classifier's ``token``), the cell attribute (or gene classes) it predicts."""
    config = BertConfig.from_dict(encoder_config.to_dict())
    config.num_labels = len(classes)
    config.id2label = dict(enumerate(classes))
    config.label2id = {name: i for i, name in enumerate(classes)}
    config.pooling = pooling
    config.special_token_ids = [int(t) for t in special_token_ids]
    config.cell_attribute = label
    config.vocabulary = vocabulary
    config.architectures = [architecture]
    config.problem_type = "single_label_classification"
    config._attn_implementation = "sdpa"
    return config


def special_token_ids(vocab: Any) -> list[int]:
    """The tokens a classifier leaves out of a cell's genes: ``<cls>`` and ``<eos>`` of a
    vocabulary that has them (V2), none otherwise."""
    return [t for t in (vocab.cls_id, vocab.eos_id) if t is not None and vocab.has_cls_eos]


def new_classifier(
    head_class: type[_EncoderClassifier], config: BertConfig, encoder: BertModel, options: Any
) -> Any:
    """A ``head_class`` classifier (cell, gene or multi-task) of ``config``, holding
    ``encoder``'s weights and new heads drawn with ``options.seed`` (the dropout before the
    heads: ``options.classifier_dropout``)."""
    config.classifier_dropout = options.classifier_dropout
    torch.manual_seed(options.seed)
    classifier = head_class(config)
    classifier.bert.load_state_dict(encoder.state_dict(), strict=True)
    return classifier


def freeze_layers(model: nn.Module, n_layers: int) -> None:
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


def _heads(model: nn.Module) -> list[str]:
    """The names of a classifier's heads: ``classifier``, or ``heads.0``, ``heads.1`` ..."""
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and (name == "classifier" or name.startswith("heads."))
    ]


def add_lora(model: nn.Module, *, rank: int, alpha: float, dropout: float) -> nn.Module:
    """The model with LoRA adapters (peft) on its attention projections: only the adapters
    and the heads train."""
    if rank < 1:
        raise InputError(f"lora_rank is {rank}", where="lora_rank", fix="use 1 or more, e.g. 8")
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=LORA_TARGETS,
        modules_to_save=_heads(model),
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


def apply_controls(model: nn.Module, options: Any) -> tuple[nn.Module, Any]:
    """The model to train (frozen layers, LoRA) and the optimizer's parameter groups (layer
    decay), or None for the Trainer's own. ``options`` is a fine-tuning run's settings
    (:class:`~genoformer.sc.classification.FinetuneSettings`): every classifier, cell, gene
    or multi-task, goes through these same controls."""
    freeze_layers(model, options.freeze_layers)
    trained: nn.Module = model
    if options.adapters == "lora":
        trained = add_lora(
            model, rank=options.lora_rank, alpha=options.lora_alpha, dropout=options.lora_dropout
        )
    optimizer = None
    if options.layer_decay is not None:
        groups = layer_decay_groups(
            trained,
            learning_rate=options.learning_rate,
            weight_decay=options.weight_decay,
            layer_decay=options.layer_decay,
            n_layers=model.config.num_hidden_layers,
        )
        optimizer = (torch.optim.AdamW, {"params": groups, "lr": options.learning_rate})
    return trained, optimizer


def train_settings(options: Any, n_train: int) -> Any:
    """The engine's :class:`~genoformer.engine.training.TrainSettings` of a fine-tuning run
    over ``n_train`` items (validation once an epoch unless ``eval_every`` says otherwise;
    batches grouped by length)."""
    from genoformer.engine.training import TrainSettings, length_grouping

    per_epoch = max(1, math.ceil(n_train / options.batch_size))
    same = ("epochs", "max_steps", "batch_size", "learning_rate", "weight_decay", "scheduler")
    same += ("keep_checkpoints", "patience", "seed", "device", "num_workers", "warmup")
    eval_every = options.eval_every or per_epoch
    return TrainSettings(
        **{name: getattr(options, name) for name in same},
        eval_batch_size=max(options.batch_size, 32),
        eval_every=eval_every,
        log_every=max(1, min(50, eval_every)),
        extra={**length_grouping()},
    )
