"""Sequence-to-function models: linear, CNN, deeper CNN and transformer.

Every model takes the one-hot encoding ``x`` of shape (N, 4, L) and returns
``logits`` of shape (N, n_outputs): predicted values for regression (in the units of the
targets) or class logits for classification. All are Hugging Face ``PreTrainedModel``s, so
the engine's Trainer set-up trains, checkpoints, saves and loads them.

The convolutional models are built as ``local`` (a stack of stride-1, 'same'-padded
convolutions whose output at a position depends on a bounded window of the input), a global
pooling over positions, and a ``head``. That split is what lets in silico mutagenesis
recompute only the window a mutation can change (see ``attribution.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import BertConfig, BertModel, PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from genoformer.engine.errors import InputError, require_choice, setting
from genoformer.seq.encoding import kmer_tokens_from_one_hot

ARCHITECTURES = ("linear", "cnn", "deep_cnn", "transformer")
POOLINGS = ("max", "mean", "maxmean")


class SeqModelConfig(PretrainedConfig):
    """Configuration of every seq model; ``architecture`` picks the network."""

    model_type = "genoformer-seq"

    def __init__(
        self,
        architecture: str = "cnn",
        task: str = "regression",
        n_outputs: int = 1,
        seq_length: int | None = None,
        n_filters: int = 32,
        filter_width: int = 3,
        pooling: str = "maxmean",
        hidden_size: int = 64,
        dropout: float = 0.1,
        n_conv_layers: int = 4,
        conv_width: int = 3,
        kmer: int = 1,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        target_mean: list[float] | None = None,
        target_std: list[float] | None = None,
        target_names: list[str] | None = None,
        classes: list[str] | None = None,
        **kwargs,
    ) -> None:
        require_choice(architecture, ARCHITECTURES, what="architecture", where="--model")
        require_choice(pooling, POOLINGS, what="pooling", where="--pooling")
        if task not in ("regression", "classification"):
            raise InputError(f"unknown task '{task}'", fix="use 'regression' or 'classification'")
        self.architecture = architecture
        self.task = task
        self.n_outputs = n_outputs
        self.seq_length = seq_length
        self.n_filters = n_filters
        self.filter_width = filter_width
        self.pooling = pooling
        self.hidden_size = hidden_size
        self.dropout = dropout
        self.n_conv_layers = n_conv_layers
        self.conv_width = conv_width
        self.kmer = kmer
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.target_mean = target_mean or [0.0] * n_outputs
        self.target_std = target_std or [1.0] * n_outputs
        self.target_names = target_names
        self.classes = classes
        super().__init__(**kwargs)


@dataclass
class SeqModelOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class ResidualDilatedConv(nn.Module):
    """``x + GELU(conv(x))`` with 'same' padding: length and locality are kept."""

    def __init__(self, channels: int, width: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(
            channels, channels, width, dilation=dilation, padding=dilation * (width - 1) // 2
        )
        self.norm = nn.BatchNorm1d(channels)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)
        self.half_width = dilation * (width - 1) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop(self.act(self.norm(self.conv(x))))


def _check_odd(width: int, name: str) -> None:
    if width % 2 != 1:
        raise InputError(
            f"{setting(name)} is {width}; 'same' padding needs an odd width",
            fix=f"use {width + 1}",
        )


class SequenceModel(PreTrainedModel):
    """One class for every seq architecture (see :class:`SeqModelConfig`)."""

    config_class = SeqModelConfig
    base_model_prefix = "seq"
    main_input_name = "x"
    _no_split_modules: list[str] = []

    def __init__(self, config: SeqModelConfig) -> None:
        super().__init__(config)
        c = config
        self.local: nn.Module | None = None
        #: How many positions either side of a position its local features can see.
        self.half_receptive_field: int | None = None
        if c.architecture == "linear":
            if not c.seq_length:
                raise InputError(
                    "the linear model needs sequences of one fixed length",
                    fix="give seq_length, or pad/crop the sequences to one length",
                )
            self.linear = nn.Linear(4 * c.seq_length, c.n_outputs)
        elif c.architecture in ("cnn", "deep_cnn"):
            _check_odd(c.filter_width, "filter_width")
            layers: list[nn.Module] = [
                nn.Conv1d(4, c.n_filters, c.filter_width, padding=c.filter_width // 2),
                nn.ReLU(),
            ]
            half = c.filter_width // 2
            if c.architecture == "deep_cnn":
                _check_odd(c.conv_width, "conv_width")
                for i in range(c.n_conv_layers):
                    block = ResidualDilatedConv(c.n_filters, c.conv_width, 2**i, c.dropout)
                    layers.append(block)
                    half += block.half_width
            self.local = nn.Sequential(*layers)
            self.half_receptive_field = half
            pooled = c.n_filters * (2 if c.pooling == "maxmean" else 1)
            self.head = nn.Sequential(
                nn.Dropout(c.dropout),
                nn.Linear(pooled, c.hidden_size),
                nn.ReLU(),
                nn.Linear(c.hidden_size, c.n_outputs),
            )
        else:
            vocab = 4**c.kmer + 1  # every k-mer, plus one token for k-mers with N
            self.encoder = BertModel(
                BertConfig(
                    vocab_size=vocab,
                    hidden_size=c.d_model,
                    num_hidden_layers=c.n_layers,
                    num_attention_heads=c.n_heads,
                    intermediate_size=4 * c.d_model,
                    max_position_embeddings=max(512, (c.seq_length or 512)),
                    hidden_dropout_prob=c.dropout,
                    attention_probs_dropout_prob=c.dropout,
                    type_vocab_size=1,
                    pad_token_id=vocab - 1,
                ),
                add_pooling_layer=False,
            )
            self.head = nn.Sequential(nn.Dropout(c.dropout), nn.Linear(c.d_model, c.n_outputs))
        self.register_buffer("target_mean", torch.tensor(c.target_mean, dtype=torch.float32))
        self.register_buffer("target_std", torch.tensor(c.target_std, dtype=torch.float32))
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # PyTorch's default initialisation suits the convolutions; BERT's own
        # initialisation is applied by BertModel itself.
        return

    @property
    def first_conv(self) -> nn.Conv1d | None:
        """The first-layer convolution whose filters are read as motifs (CNNs only)."""
        return self.local[0] if self.local is not None else None

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        """Global pooling over positions of local features (N, C, L) -> (N, C or 2C)."""
        mode = self.config.pooling
        if mode == "max":
            return features.amax(dim=-1)
        if mode == "mean":
            return features.mean(dim=-1)
        return torch.cat([features.amax(dim=-1), features.mean(dim=-1)], dim=-1)

    def to_output_scale(self, raw: torch.Tensor) -> torch.Tensor:
        """Regression heads predict standardised targets; put them back in target units."""
        if self.config.task == "regression":
            return raw * self.target_std + self.target_mean
        return raw

    def raw_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Head outputs before scaling: standardised values or class logits."""
        arch = self.config.architecture
        if arch == "linear":
            return self.linear(x.flatten(1))
        if self.local is not None:
            return self.head(self.pool(self.local(x)))
        tokens = kmer_tokens_from_one_hot(x, self.config.kmer)
        hidden = self.encoder(input_ids=tokens).last_hidden_state
        return self.head(hidden.mean(dim=1))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> SeqModelOutput:
        raw = self.raw_forward(x)
        loss = None
        if labels is not None:
            if self.config.task == "regression":
                target = (labels.view_as(raw) - self.target_mean) / self.target_std
                loss = nn.functional.mse_loss(raw, target)
            else:
                loss = nn.functional.cross_entropy(raw, labels.long().view(-1))
        return SeqModelOutput(loss=loss, logits=self.to_output_scale(raw))
