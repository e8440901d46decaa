"""The genotype-to-phenotype transformer: genotype tokens through a GPT-J-style decoder or a
BERT encoder, pooled into a regression or classification head.

The genotype tokens (see :mod:`genoformer.gwas.model.inputs`) go into the backbone through
``inputs_embeds``. One extra token carries the covariates (a learned embedding plus a linear
projection of the standardised covariates): last in the sequence for the causal decoder,
whose last position sees every token and is the pooled output; first for BERT, where it is
the ``cls`` pooled output (or part of the mean). Covariates also reach the output through a
linear term, since their effects are usually linear and should not need the backbone. So do
the genotypes (``additive``, on by default): a linear term on the standardised dosages
(missing calls at the training mean), started at zero, carries the additive effects the way
ridge regression does, and leaves the backbone the part of the phenotype that is not additive
in the genotypes (dominance, epistasis). Without it the backbone has to learn a linear map
through its layer norms, and on a purely additive trait it falls short of ridge.
Regression targets are standardised inside the model (loss on that scale, predictions in the
targets' units), as the seq pillar does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from transformers import (
    BertConfig,
    BertModel,
    GPTJConfig,
    GPTJModel,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from genoformer.engine.errors import InputError, require_choice
from genoformer.gwas.model.inputs import GenotypeEmbedding, missing_calls, window_layout

BACKBONES = ("gptj", "bert")
TASKS = ("regression", "classification")
POOLINGS = {"gptj": ("last",), "bert": ("mean", "cls")}


class GenotypeModelConfig(PretrainedConfig):
    """Configuration of the genotype model; ``backbone`` picks the transformer."""

    model_type = "genoformer_genotype"

    def __init__(
        self,
        backbone: str = "gptj",
        n_variants: int = 1,
        n_covariates: int = 0,
        task: str = "regression",
        num_labels: int = 1,
        window: int = 1,
        token_of_column: Sequence[int] | None = None,
        d_model: int = 32,
        n_layers: int = 2,
        n_heads: int = 4,
        rotary_dim: int | None = None,
        dropout: float = 0.1,
        initializer_range: float = 0.02,
        pooling: str | None = None,
        additive: bool = True,
        genotype_mean: Sequence[float] | None = None,
        genotype_std: Sequence[float] | None = None,
        target_mean: float = 0.0,
        target_std: float = 1.0,
        covariate_names: Sequence[str] | None = None,
        covariate_columns: Sequence[str] | None = None,
        covariate_mean: Sequence[float] | None = None,
        covariate_std: Sequence[float] | None = None,
        classes: Sequence[str] | None = None,
        **kwargs,
    ) -> None:
        require_choice(backbone, BACKBONES, what="backbone", where="--backbone")
        if task not in TASKS:
            raise InputError(f"unknown task '{task}'", fix="use 'regression' or 'classification'")
        pooling = pooling or POOLINGS[backbone][0]
        if pooling not in POOLINGS[backbone]:
            raise InputError(
                f"pooling '{pooling}' does not fit the {backbone} backbone",
                where="--pooling",
                fix=f"use one of {', '.join(POOLINGS[backbone])}",
            )
        if window < 1:
            raise InputError(f"window is {window}", where="--window", fix="use 1 or more variants")
        if d_model % n_heads:
            raise InputError(
                f"d_model {d_model} is not a multiple of n_heads {n_heads}",
                fix="pick d_model divisible by n_heads",
            )
        self.backbone = backbone
        self.n_variants = n_variants
        self.n_covariates = n_covariates
        self.task = task
        self.window = window
        if token_of_column is None:
            token_of_column = window_layout(["1"] * n_variants, None, window).tolist()
        self.token_of_column = [int(t) for t in token_of_column]
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.rotary_dim = rotary_dim
        self.dropout = dropout
        self.initializer_range = float(initializer_range)
        self.pooling = pooling
        self.additive = bool(additive)
        self.genotype_mean = [float(v) for v in genotype_mean or [0.0] * n_variants]
        self.genotype_std = [float(v) for v in genotype_std or [1.0] * n_variants]
        for name, values in (
            ("genotype_mean", self.genotype_mean),
            ("genotype_std", self.genotype_std),
        ):
            if len(values) != n_variants:
                raise InputError(
                    f"{name} has {len(values)} entries for {n_variants} variants",
                    fix="give one value per model column",
                )
        self.target_mean = float(target_mean)
        self.target_std = float(target_std)
        self.covariate_names = list(covariate_names or [])
        self.covariate_columns = list(covariate_columns or self.covariate_names)
        self.covariate_mean = list(covariate_mean or [0.0] * n_covariates)
        self.covariate_std = list(covariate_std or [1.0] * n_covariates)
        self.classes = list(classes) if classes else None
        # A saved config keeps ``classes`` but not the number of labels: count them.
        if task == "regression":
            num_labels = 1
        elif classes:
            num_labels = len(classes)
        else:
            num_labels = max(num_labels, 2)
        kwargs.pop("id2label", None)
        kwargs.pop("label2id", None)
        kwargs["num_labels"] = num_labels
        super().__init__(**kwargs)

    @property
    def n_tokens(self) -> int:
        """Genotype tokens (windows), not counting the covariate token."""
        return max(self.token_of_column) + 1 if self.token_of_column else 0


def _backbone(config: GenotypeModelConfig) -> nn.Module:
    c = config
    length = c.n_tokens + 1
    if c.backbone == "gptj":
        head_dim = c.d_model // c.n_heads
        rotary = c.rotary_dim if c.rotary_dim is not None else head_dim
        return GPTJModel(
            GPTJConfig(
                vocab_size=1,  # tokens come in through inputs_embeds
                n_positions=length,
                n_embd=c.d_model,
                n_layer=c.n_layers,
                n_head=c.n_heads,
                rotary_dim=rotary - rotary % 2,
                n_inner=4 * c.d_model,
                resid_pdrop=c.dropout,
                embd_pdrop=c.dropout,
                attn_pdrop=c.dropout,
                use_cache=False,
                initializer_range=c.initializer_range,
                bos_token_id=None,
                eos_token_id=None,
            )
        )
    return BertModel(
        BertConfig(
            vocab_size=1,
            hidden_size=c.d_model,
            num_hidden_layers=c.n_layers,
            num_attention_heads=c.n_heads,
            intermediate_size=4 * c.d_model,
            max_position_embeddings=length,
            hidden_dropout_prob=c.dropout,
            attention_probs_dropout_prob=c.dropout,
            type_vocab_size=1,
            pad_token_id=0,
            initializer_range=c.initializer_range,
        ),
        add_pooling_layer=False,
    )


class GenotypeModel(PreTrainedModel):
    """Genotypes (and covariates) to a phenotype through a transformer backbone."""

    config_class = GenotypeModelConfig
    base_model_prefix = "genotype"
    main_input_name = "genotypes"
    _no_split_modules: list[str] = []

    def __init__(self, config: GenotypeModelConfig) -> None:
        super().__init__(config)
        c = config
        if len(c.token_of_column) != c.n_variants:
            raise InputError(
                f"token_of_column has {len(c.token_of_column)} entries for {c.n_variants} variants",
                fix="build the config with window_layout over the model's columns",
            )
        self.embedding = GenotypeEmbedding(c.token_of_column, c.d_model, c.initializer_range)
        self.readout = nn.Parameter(torch.randn(c.d_model) * c.initializer_range)
        self.covariate_embedding = nn.Linear(c.n_covariates, c.d_model) if c.n_covariates else None
        self.covariate_linear = (
            nn.Linear(c.n_covariates, c.num_labels, bias=False) if c.n_covariates else None
        )
        self.genotype_linear = None
        if c.additive:
            self.register_buffer("genotype_mean", torch.tensor(c.genotype_mean))
            self.register_buffer("genotype_scale", 1.0 / torch.tensor(c.genotype_std))
            self.genotype_linear = nn.Linear(c.n_variants, c.num_labels, bias=False)
            nn.init.zeros_(self.genotype_linear.weight)
        self.backbone = _backbone(c)
        self.head = nn.Sequential(nn.Dropout(c.dropout), nn.Linear(c.d_model, c.num_labels))
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # The backbones initialise themselves when built; the embeddings are initialised in
        # their constructors, the head by PyTorch's defaults.
        return

    def raw_forward(
        self,
        genotypes: torch.Tensor,
        missing: torch.Tensor | None = None,
        covariates: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Head outputs before scaling: standardised values or class logits ``[b, k]``."""
        c = self.config
        if genotypes.shape[-1] != c.n_variants:
            raise InputError(
                f"{genotypes.shape[-1]} genotype columns; the model takes {c.n_variants}",
                fix="give the variants (and decoys) in the model's column order",
            )
        tokens = self.embedding(genotypes, missing)
        extra = self.readout.expand(tokens.shape[0], 1, -1)
        if self.covariate_embedding is not None:
            if covariates is None:
                raise InputError(
                    f"the model was trained with {c.n_covariates} covariates and none were given",
                    fix="pass the covariates (--covar) the model was trained with",
                )
            extra = extra + self.covariate_embedding(covariates).unsqueeze(1)
        if c.backbone == "gptj":
            sequence = torch.cat([tokens, extra], dim=1)
            hidden = self.backbone(inputs_embeds=sequence).last_hidden_state
            pooled = hidden[:, -1]
        else:
            sequence = torch.cat([extra, tokens], dim=1)
            hidden = self.backbone(inputs_embeds=sequence).last_hidden_state
            pooled = hidden[:, 0] if c.pooling == "cls" else hidden.mean(dim=1)
        out = self.head(pooled)
        if self.covariate_linear is not None:
            out = out + self.covariate_linear(covariates)
        if self.genotype_linear is not None:
            centred = (genotypes - self.genotype_mean) * self.genotype_scale
            absent = missing_calls(genotypes, missing)
            out = out + self.genotype_linear(torch.where(absent, 0.0, centred))
        return out

    def forward(
        self,
        genotypes: torch.Tensor,
        missing: torch.Tensor | None = None,
        covariates: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        raw = self.raw_forward(genotypes, missing, covariates)
        c = self.config
        loss = None
        if labels is not None:
            if c.task == "regression":
                target = (labels.view_as(raw).to(raw.dtype) - c.target_mean) / c.target_std
                loss = nn.functional.mse_loss(raw, target)
            else:
                loss = nn.functional.cross_entropy(raw, labels.long().view(-1))
        logits = raw * c.target_std + c.target_mean if c.task == "regression" else raw
        return SequenceClassifierOutput(loss=loss, logits=logits)


def score(
    model: GenotypeModel,
    genotypes: torch.Tensor,
    missing: torch.Tensor | None = None,
    covariates: torch.Tensor | None = None,
) -> torch.Tensor:
    """One differentiable number per sample ``[b]``: the prediction (regression) or the
    log-odds of the case class, ``logit[:, 1] - logit[:, 0]`` (binary classification)."""
    logits = model(genotypes, missing=missing, covariates=covariates).logits
    if model.config.task == "regression":
        return logits[:, 0]
    if logits.shape[1] != 2:
        raise ValueError("score is defined for regression and binary classification")
    return logits[:, 1] - logits[:, 0]
