"""Attributions for seq models: in silico saturation mutagenesis and gradients.

Every function takes one-hot sequences ``x`` of shape (N, 4, L) (numpy or torch; A, C, G, T
rows, N as an all-zero column) and returns a float32 numpy array of the same shape: one
score per sequence, base and position, ready to draw as a sequence logo.

Which model output is explained (``target``):

- an ``int``: that output (regression) or that class's logit (classification);
- ``None``, regression: the mean over outputs (tangermeme's convention, so a one-output
  model is explained as is);
- ``None``, classification: one logit -> that logit; two classes -> the logit of the last
  class (the "positive" one); more classes -> the logit of each sequence's predicted class.

Scores are in the model's output units: target units for regression (after
``to_output_scale``), logits for classification.

For the convolutional models, :func:`saturation_mutagenesis` is exact but recomputes only
what a substitution can change (see :func:`_fast_ism_chunk`), which is what makes ISM of
thousands of long sequences cheap on a CPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from genoformer.engine.attribution import gradients
from genoformer.engine.device import evaluating
from genoformer.engine.errors import InputError
from genoformer.engine.progress import progress_bar
from genoformer.seq.models import ResidualDilatedConv

# How many float elements one batch of the fast ISM path may hold per intermediate tensor:
# 8 MiB keeps the working set near the CPU caches (larger batches measured slower) while
# still spreading the per-call overhead of each operation over a thousand mutants or more.
_FAST_BUDGET = 2**21
# Reference local features of a chunk of sequences: (n, C, L) floats at most.
_FEATURE_BUDGET = 2**25
# Default number of whole mutated sequences per forward pass on the generic path.
_GENERIC_BATCH = 128


# ---------------------------------------------------------------------------------------
# Input, device and target handling shared by every attribution
# ---------------------------------------------------------------------------------------


def _as_one_hot(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A float32 CPU tensor (N, 4, L), or an :class:`InputError` naming the problem."""
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x))
    if x.ndim == 2:
        raise InputError(
            f"x has shape {tuple(x.shape)}: one sequence, but a batch is expected",
            fix="add a batch axis: x[None] for shape (1, 4, L)",
        )
    if x.ndim != 3 or x.shape[1] != 4:
        raise InputError(
            f"x has shape {tuple(x.shape)}, expected (N, 4, L) one-hot sequences",
            fix="one-hot encode the sequences with genoformer.seq.encoding (A, C, G, T rows)",
        )
    if x.shape[0] == 0 or x.shape[2] == 0:
        raise InputError(f"x has shape {tuple(x.shape)}: no sequences or no positions")
    x = x.detach().to("cpu", torch.float32)
    if not torch.isfinite(x).all():
        raise InputError("x holds NaN or infinite values", fix="pass a one-hot encoding")
    return x


def _model_dtype(model: nn.Module) -> torch.dtype:
    try:
        return next(model.parameters()).dtype
    except StopIteration:
        return torch.float32


def _check_target(model: nn.Module, target: int | None) -> None:
    n_outputs = int(model.config.n_outputs)
    if target is not None and not -n_outputs <= int(target) < n_outputs:
        raise InputError(
            f"target {target} is out of range for a model with {n_outputs} output(s)",
            where="--target",
            fix=f"use an output index from 0 to {n_outputs - 1}, or leave it unset",
        )


def _target_index(model: nn.Module, y0: torch.Tensor, target: int | None) -> torch.Tensor | None:
    """Which output to explain for each sequence (N,), or None for the mean over outputs."""
    n, n_outputs = y0.shape
    if target is not None:
        return torch.full((n,), int(target) % n_outputs, dtype=torch.long, device=y0.device)
    if model.config.task != "classification":
        return None
    if n_outputs <= 2:
        return torch.full((n,), n_outputs - 1, dtype=torch.long, device=y0.device)
    return y0.argmax(dim=1)


def _select(y: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    """The explained output of each row of ``y`` (E, n_outputs) -> (E,)."""
    if index is None:
        return y.mean(dim=1)
    return y.gather(1, index[:, None])[:, 0]


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).logits


@contextlib.contextmanager
def _progress(show: bool, total: int, description: str) -> Iterator[Callable[[int], None]]:
    """A callback that advances a progress bar by a count (drawn only when ``show``)."""
    with progress_bar(enabled=show, unit="substitutions", transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda count: bar.advance(task, count)


# ---------------------------------------------------------------------------------------
# In silico saturation mutagenesis
# ---------------------------------------------------------------------------------------


def _edit_list(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every substitution to make: (sequence, base, position), in that sort order.

    Writing the base already present changes nothing, so it is left out (its score is 0 by
    definition). A column that is not a clean one-hot (an N, or a soft encoding) gets all
    four substitutions.
    """
    identity = (x == 1) & (x.sum(dim=1, keepdim=True) == 1)
    seq, base, pos = torch.nonzero(~identity, as_tuple=True)
    return seq, base, pos


def saturation_mutagenesis(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    *,
    target: int | None = None,
    center: bool = False,
    hypothetical: bool = True,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    fast: bool = True,
    progress: bool = False,
) -> np.ndarray:
    """In silico saturation mutagenesis: the effect of every single-base substitution.

    Parameters
    ----------
    model
        A :class:`~genoformer.seq.models.SequenceModel` (any architecture).
    x
        One-hot sequences, shape (N, 4, L).
    target
        The output to explain; see the module docstring for ``None``.
    center
        Subtract, at each position, the mean over the four bases (tangermeme's
        position normalisation), so each position's scores sum to zero.
    hypothetical
        Return all four bases (True) or only the base present in ``x`` (False; the others
        are 0; the observed base scores 0 unless ``center``, so use the two together).
        ``center=True, hypothetical=False`` gives exactly what tangermeme's
        ``saturation_mutagenesis(model, X)`` returns with its defaults: minus the mean
        effect of the three substitutions, on the observed base.
    batch_size
        Mutants evaluated together; ``None`` picks a size from a memory budget.
    device
        ``"cpu"``, ``"cuda"``, ... or ``None`` for the device the model is on.
    fast
        For the CNNs, recompute only the window of positions a substitution can change
        (exact; ``False`` runs full forward passes and is there for checking).
    progress
        Show a progress bar.

    Returns
    -------
    numpy.ndarray
        Shape (N, 4, L), float32. With the defaults, entry ``[n, b, i]`` is the model's
        output for sequence ``n`` with base ``b`` written at position ``i``, minus its
        output for sequence ``n`` as given (so the base already present scores 0).
    """
    x = _as_one_hot(x)
    _check_target(model, target)
    n, _, length = x.shape
    # Made outside inference mode so that it can be centred in place afterwards.
    delta = torch.zeros((n, 4, length), dtype=torch.float32)
    with evaluating(model, device) as dev, torch.inference_mode():
        dtype = _model_dtype(model)
        plan = _layer_plan(model) if fast else None
        if plan is not None:
            channels = int(model.config.n_filters)
            pad = _plan_padding(plan)
            # Reference activations of each step, prefix tables, features: ~ this many
            # (n, C, L + 2 pad) arrays per chunk of sequences.
            per_seq = channels * (length + 2 * pad) * (len(plan) + 4)
            seqs_per_chunk = max(1, _FEATURE_BUDGET // per_seq)
            edits_per_batch = batch_size or max(64, _FAST_BUDGET // (channels * (2 * pad + 1)))
        else:
            seqs_per_chunk = max(1, _FEATURE_BUDGET // (4 * length))
            edits_per_batch = batch_size or _GENERIC_BATCH
        n_edits = len(_edit_list(x)[0])
        with _progress(progress, n_edits, "saturation mutagenesis") as advance:
            for start in range(0, n, seqs_per_chunk):
                xc = x[start : start + seqs_per_chunk].to(dev, dtype)
                if plan is not None:
                    seq, base, pos, d = _fast_ism_chunk(
                        model, xc, target, edits_per_batch, plan, advance
                    )
                else:
                    seq, base, pos, d = _generic_ism_chunk(
                        model, xc, target, edits_per_batch, advance
                    )
                delta[start + seq.cpu(), base.cpu(), pos.cpu()] = d.float().cpu()
    if center:
        delta -= delta.mean(dim=1, keepdim=True)
    if not hypothetical:
        delta *= x
    return delta.numpy()


def _generic_ism_chunk(
    model: nn.Module,
    x: torch.Tensor,
    target: int | None,
    batch_size: int,
    advance: Callable[[int], None],
) -> tuple[torch.Tensor, ...]:
    """ISM by full forward passes over mutated copies: any model, cost O(L) per mutant."""
    y0 = torch.cat([_logits(model, x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    index = _target_index(model, y0, target)
    ref = _select(y0, index)
    seq, base, pos = _edit_list(x)
    out = torch.empty(len(seq), dtype=y0.dtype, device=x.device)
    for lo in range(0, len(seq), batch_size):
        s, b, p = seq[lo : lo + batch_size], base[lo : lo + batch_size], pos[lo : lo + batch_size]
        e = torch.arange(len(s), device=x.device)
        mutants = x[s]  # advanced indexing copies
        mutants[e, :, p] = 0
        mutants[e, b, p] = 1
        y = _logits(model, mutants)
        out[lo : lo + batch_size] = _select(y, None if index is None else index[s]) - ref[s]
        advance(len(s))
    return seq, base, pos, out


# Modules that act on each position separately (batch norm: in eval mode, where ISM runs).
_POINTWISE = (
    nn.ReLU,
    nn.GELU,
    nn.SiLU,
    nn.ELU,
    nn.LeakyReLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softplus,
    nn.Identity,
    nn.Dropout,
    nn.BatchNorm1d,
)


def _half_width(module: nn.Module) -> int | None:
    """How far either side of a position ``module``'s output looks, or None if unknown."""
    if isinstance(module, _POINTWISE):
        return 0
    if isinstance(module, nn.Conv1d):
        width, dilation = module.kernel_size[0], module.dilation[0]
        half = dilation * (width - 1) // 2
        same = (
            width % 2 == 1
            and module.stride == (1,)
            and module.padding == (half,)
            and module.padding_mode == "zeros"
        )
        return half if same else None
    if isinstance(module, ResidualDilatedConv):
        return module.half_width
    return None


def _layer_plan(model: nn.Module) -> list[tuple[nn.Module, int]] | None:
    """The local stack as (module, half width) steps, when every step is understood."""
    local = getattr(model, "local", None)
    if not isinstance(local, nn.Sequential):
        return None
    plan = [(module, _half_width(module)) for module in local]
    if any(half is None for _, half in plan):
        return None
    if sum(half for _, half in plan) != model.half_receptive_field:
        return None
    return plan


def _fast_ism_chunk(
    model: nn.Module,
    x: torch.Tensor,
    target: int | None,
    batch_size: int,
    plan: list[tuple[nn.Module, int]],
    advance: Callable[[int], None],
) -> tuple[torch.Tensor, ...]:
    """Exact ISM for ``local -> pool -> head`` models, recomputing only what changes.

    A substitution at ``i`` changes the output of the ``k``-th step of the local stack
    only on ``[i - c_k, i + c_k]``, ``c_k`` the sum of the half widths of the steps so far
    (fastISM, Nair et al. 2022). So each mutant carries just that window from step to
    step: a convolution-like step of half width ``w`` reads the window, widened by ``2w``
    either side with the reference activations there, and keeps the middle; positions
    past the sequence's ends are held at zero, the padding the next step would see. A
    plain first convolution is linear in the one-hot input, so its window is the
    reference's plus ``W[:, new base] - W[:, old base]`` (flipped): no convolution at all,
    which is the whole local stack of a one-layer CNN.

    Global pooling of the spliced features never touches all ``L`` positions: the max
    outside the window comes from prefix and suffix maxima of the reference features, the
    sum from prefix sums.
    """
    length = x.shape[-1]
    h = int(model.half_receptive_field)
    pad = _plan_padding(plan)
    mode = model.config.pooling
    shortcut = _linear_first_step(plan)
    references, features = _reference_steps(x, plan, shortcut, pad)
    y0 = model.to_output_scale(model.head(model.pool(features)))
    index = _target_index(model, y0, target)
    ref = _select(y0, index)
    tables = _pool_tables(features, mode in ("max", "maxmean"), mode in ("mean", "maxmean"))
    # Row a, laid out (width, C): the change in the first convolution's output on
    # [i - w, i + w] per unit of base a added at i.
    kernel = plan[0][0].weight.flip(-1).permute(1, 2, 0).reshape(4, -1) if shortcut else None

    seq, base, pos = _edit_list(x)
    # Windows of mutants within h of an end reach past it and need masking; grouping those
    # mutants spares every other batch the masks.
    near_end = (pos < h) | (pos > length - 1 - h)
    order = torch.argsort(near_end.to(torch.int8), stable=True)
    seq, base, pos = seq[order], base[order], pos[order]
    out = torch.empty(len(seq), dtype=y0.dtype, device=x.device)
    for lo in range(0, len(seq), batch_size):
        s, b, p = seq[lo : lo + batch_size], base[lo : lo + batch_size], pos[lo : lo + batch_size]
        current = _local_windows(plan, references, kernel, x, s, b, p, pad, features.shape[1])
        pooled = _pool_mutants(current, tables, s, p, h, length)
        y = model.to_output_scale(model.head(pooled))
        out[lo : lo + batch_size] = _select(y, None if index is None else index[s]) - ref[s]
        advance(len(s))
    return seq, base, pos, out


class _PoolTables(NamedTuple):
    """Per-sequence summaries of the reference features, for pooling outside a window.

    Row ``s * (L + 1) + j`` of the (n * (L + 1), C) tables summarises the positions of
    sequence ``s`` before ``j`` (prefix) or from ``j`` on (suffix), so that each mutant
    gathers whole contiguous rows. None where the pooling does not need them.
    """

    prefix_max: torch.Tensor | None
    suffix_max: torch.Tensor | None
    #: float64: the sum outside a window is a difference of prefix sums.
    prefix_sum: torch.Tensor | None
    #: (n, C) float64: the sum over every position.
    total: torch.Tensor | None


def _reference_steps(
    x: torch.Tensor, plan: list[tuple[nn.Module, int]], shortcut: bool, pad: int
) -> tuple[list[torch.Tensor | None], torch.Tensor]:
    """The reference activations that the mutants' windows are spliced into, and the local
    stack's output features (n, C, L).

    One entry per step: the input of each convolution-like step (for the shortcut, the
    first convolution's output instead) as (n * (L + 2 pad), C) rows, zero-padded, one
    contiguous row per position; None for pointwise steps.
    """

    def padded_rows(t: torch.Tensor) -> torch.Tensor:
        t = torch.nn.functional.pad(t, (pad, pad))
        return t.transpose(1, 2).reshape(-1, t.shape[1])

    references: list[torch.Tensor | None] = []
    features = x
    for k, (module, half) in enumerate(plan):
        if half > 0 and not (k == 0 and shortcut):
            references.append(padded_rows(features))
        features = module(features)
        if half > 0 and k == 0 and shortcut:
            references.append(padded_rows(features))
        if half == 0:
            references.append(None)
    return references, features


def _pool_tables(features: torch.Tensor, use_max: bool, use_mean: bool) -> _PoolTables:
    """Prefix and suffix maxima and prefix sums of the reference features (n, C, L)."""
    n, channels, _ = features.shape

    def rows(t: torch.Tensor) -> torch.Tensor:
        return t.transpose(1, 2).reshape(-1, channels)

    prefix_max = suffix_max = prefix_sum = total = None
    edge = features.new_full((n, channels, 1), -torch.inf)
    if use_max:
        prefix_max = rows(torch.cat([edge, features.cummax(dim=-1).values], dim=-1))
        suffix = features.flip(-1).cummax(dim=-1).values.flip(-1)
        suffix_max = rows(torch.cat([suffix, edge], dim=-1))
    if use_mean:
        prefix_sum = torch.cat([torch.zeros_like(edge), features], dim=-1).double().cumsum(-1)
        total = prefix_sum[:, :, -1]
        prefix_sum = rows(prefix_sum)
    return _PoolTables(prefix_max, suffix_max, prefix_sum, total)


def _local_windows(
    plan: list[tuple[nn.Module, int]],
    references: list[torch.Tensor | None],
    kernel: torch.Tensor | None,
    x: torch.Tensor,
    s: torch.Tensor,
    b: torch.Tensor,
    p: torch.Tensor,
    pad: int,
    channels: int,
) -> torch.Tensor:
    """The local stack's output on ``[p - h, p + h]`` of each mutant (sequence ``s``, base
    ``b`` written at ``p``), (E, C, 2h + 1); positions past the ends are zero.

    ``kernel`` is the first convolution as a formula (see :func:`_fast_ism_chunk`), or None
    to run every step.
    """
    length = x.shape[-1]
    n_edits = len(s)
    new_base = torch.nn.functional.one_hot(b, 4).to(x.dtype)
    centre = s * (length + 2 * pad) + p + pad  # each mutant's row in the tables
    current = new_base[:, :, None]  # the mutant's window at the input: one column
    c = 0
    for k, (module, half) in enumerate(plan):
        if half == 0:
            current = module(current)
        elif k == 0 and kernel is not None:
            rows = _rows_around(references[0], centre, half).transpose(1, 2)  # (E, w, C)
            change = new_base - x[s, :, p]
            current = torch.addmm(rows.reshape(n_edits, -1), change, kernel)
            current = current.view(n_edits, 2 * half + 1, channels).transpose(1, 2)
            c = half
        else:
            spliced = _rows_around(references[k], centre, c + 2 * half)  # a copy
            spliced[:, :, 2 * half : 2 * half + 2 * c + 1] = current
            c += half
            current = module(spliced)[:, :, half : half + 2 * c + 1]
        if c > 0:
            # Positions past either end are the zero padding the next step reads.
            where = p[:, None] + torch.arange(-c, c + 1, device=x.device)
            outside = (where < 0) | (where >= length)
            if bool(outside.any()):
                current = current.masked_fill(outside[:, None, :], 0.0)
    return current


def _pool_mutants(
    current: torch.Tensor,
    tables: _PoolTables,
    s: torch.Tensor,
    p: torch.Tensor,
    h: int,
    length: int,
) -> torch.Tensor:
    """The pooled features of each mutant: its window ``current`` (E, C, 2h + 1) around
    ``p`` pooled with the reference features of sequence ``s`` outside it."""
    where = p[:, None] + torch.arange(-h, h + 1, device=p.device)
    outside = (where < 0) | (where >= length)
    any_outside = bool(outside.any())
    start = (p - h).clamp(0, length)
    stop = (p + h + 1).clamp(0, length)
    pooled = []
    if tables.prefix_max is not None:
        if any_outside:
            new_max = current.masked_fill(outside[:, None, :], -torch.inf).amax(dim=-1)
        else:
            new_max = current.amax(dim=-1)
        rest = torch.maximum(
            tables.prefix_max[s * (length + 1) + start], tables.suffix_max[s * (length + 1) + stop]
        )
        pooled.append(torch.maximum(rest, new_max))
    if tables.prefix_sum is not None:
        ps = tables.prefix_sum
        rest = tables.total[s] - ps[s * (length + 1) + stop] + ps[s * (length + 1) + start]
        pooled.append((rest.to(current.dtype) + current.sum(dim=-1)) / length)
    return torch.cat(pooled, dim=-1)


def _linear_first_step(plan: list[tuple[nn.Module, int]]) -> bool:
    """Whether the first step is a plain convolution, whose change a formula gives."""
    first, half = plan[0]
    return (
        isinstance(first, nn.Conv1d)
        and half > 0
        and first.dilation == (1,)
        and first.groups == 1
        and first.in_channels == 4
    )


def _rows_around(table: torch.Tensor, centre: torch.Tensor, half: int) -> torch.Tensor:
    """(E, C, 2 half + 1): the rows of ``table`` (positions, C) around each centre row."""
    offsets = torch.arange(-half, half + 1, device=centre.device)
    return table[centre[:, None] + offsets].transpose(1, 2)


def _plan_padding(plan: list[tuple[nn.Module, int]]) -> int:
    """How far past the ends the mutants' windows reach: ``c + 2w`` at the widest step."""
    c, reach = 0, 0
    for _, half in plan:
        reach = max(reach, c + 2 * half)
        c += half
    return reach


# ---------------------------------------------------------------------------------------
# Gradient attributions
# ---------------------------------------------------------------------------------------


class _Logits(nn.Module):
    """A seq model as engine attribution calls it: one-hot in, logits out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).logits


def saliency(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    *,
    target: int | None = None,
    center: bool = False,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Gradient of the explained output with respect to the one-hot input.

    Parameters
    ----------
    model
        A linear or convolutional :class:`~genoformer.seq.models.SequenceModel`.
    x
        One-hot sequences, shape (N, 4, L).
    target
        The output to explain; see the module docstring for ``None``.
    center
        Subtract, at each position, the mean gradient over the four bases: the part of
        the gradient that points off the one-hot simplex (Majdandzic et al., Genome
        Biology 2023).
    batch_size
        Sequences per backward pass.
    device
        ``"cpu"``, ``"cuda"``, ... or ``None`` for the device the model is on.

    Returns
    -------
    numpy.ndarray
        Shape (N, 4, L), float32.
    """
    x = _as_one_hot(x)
    _check_target(model, target)
    if getattr(model.config, "architecture", None) == "transformer":
        # k-mer tokens are looked up from the one-hot input, which has no gradient.
        raise InputError(
            "gradient attributions need a model that is differentiable in its one-hot "
            "input; the transformer reads k-mer tokens",
            fix="use saturation_mutagenesis for transformer models",
        )
    if target is None and model.config.task != "classification":
        explained = None  # the mean over the outputs, as _select does
    else:

        def explained(y: torch.Tensor) -> torch.Tensor:
            return _target_index(model, y, target)

    grads = gradients(_Logits(model), x, target=explained, batch_size=batch_size, device=device)
    if center:
        grads -= grads.mean(dim=1, keepdim=True)
    return grads.numpy()


def gradient_x_input(model: nn.Module, x: np.ndarray | torch.Tensor, **options: Any) -> np.ndarray:
    """Gradient times input: the first-order contribution of each base present.

    Takes the parameters of :func:`saliency`. ``center=True`` with an integer ``target``
    reproduces tangermeme's ``saliency(model, X, target=target)`` (its defaults correct
    the gradient and project it onto ``X``).

    Returns
    -------
    numpy.ndarray
        Shape (N, 4, L), float32; zero wherever ``x`` is zero.
    """
    x = _as_one_hot(x)
    return saliency(model, x, **options) * x.numpy()
