"""``genoformer sc ...``: thin commands over the sc pillar's functions.

The functions are imported inside each command, so that ``--help`` is quick.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from genoformer.engine.flags import Overwrite

if TYPE_CHECKING:
    from genoformer.engine.runs import RunResult

app = typer.Typer(no_args_is_help=True)

Dictionaries = Annotated[
    Path | None,
    typer.Option(
        help="Folder holding Geneformer's gc30M/ and gc104M/ dictionaries "
        "(default: $GENOFORMER_GENEFORMER_DIR, else the copy genoformer ships)."
    ),
]
CorpusVocabulary = Annotated[
    str | None,
    typer.Option(help="V1, V2 or a vocabulary file (default: the corpus manifest's)."),
]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda, npu or mps.")]
RunOut = Annotated[Path, typer.Option(help="Run directory.")]
Checkpoint = Annotated[Path, typer.Argument(help="Checkpoint directory (Geneformer's or ours).")]
Corpus = Annotated[Path, typer.Argument(help="Corpus directory from `sc tokenize`.")]
EmbLayer = Annotated[int, typer.Option(help="Layer: -1 the second-to-last (default), 0 the last.")]
UmapSeed = Annotated[int, typer.Option(help="Seed of the UMAP layout.")]
# The options of the commands that train (sc pretrain, sc classify, sc classify-genes).
Epochs = Annotated[float, typer.Option(help="Epochs over the training cells.")]
MaxSteps = Annotated[int, typer.Option(help="Steps (> 0 overrides --epochs).")]
TrainBatch = Annotated[int, typer.Option(help="Cells per batch on each device.")]
LearningRate = Annotated[float, typer.Option(help="Peak AdamW learning rate.")]
Scheduler = Annotated[str, typer.Option(help="Decay after warm-up: linear or cosine.")]
WeightDecay = Annotated[float, typer.Option(help="AdamW weight decay.")]
KeepCheckpoints = Annotated[int, typer.Option(help="Checkpoints kept.")]
Patience = Annotated[
    int | None, typer.Option(help="Stop after this many evaluations without improvement.")
]
NumWorkers = Annotated[int, typer.Option(help="Data-loading workers per device.")]
Resume = Annotated[bool, typer.Option(help="Continue from the last checkpoint.")]
Layer = Annotated[str | None, typer.Option(help="Layer holding raw counts ('raw' for .raw).")]
GeneIdColumn = Annotated[str | None, typer.Option(help="var column with the gene ids.")]
Backed = Annotated[
    bool | None, typer.Option("--backed/--in-memory", help="Read .h5ad/.zarr from disk.")
]
FineTuneFrom = Annotated[
    str, typer.Option(help="Checkpoint dir, `sc pretrain` run or model, or a preset.")
]


def _option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
    )


def _typed_option(kind: Any, help: str) -> Any:
    """The annotation of an option of type ``kind``."""
    return Annotated[kind, typer.Option(help=help)]


def _run_options(seed_help: str) -> tuple[inspect.Parameter, ...]:
    """The last options of a fine-tuning command: the seed (what it seeds in ``seed_help``),
    the device, the data-loading workers, resume and overwrite."""
    return (
        _option("seed", _typed_option(int, seed_help), 0),
        _option("device", Device, "auto"),
        _option("num_workers", NumWorkers, 0),
        _option("resume", Resume, False),
        _option("overwrite", Overwrite, False),
    )


#: How a fine-tuning run trains (:class:`~genoformer.sc.classification.FinetuneSettings`):
#: the options ``sc classify`` and ``sc classify-genes`` share.
_FINE_TUNING_OPTIONS = (
    _option(
        "freeze_layers", _typed_option(int, "Freeze the embeddings and the first N layers."), 0
    ),
    _option(
        "layer_decay",
        _typed_option(float | None, "Learning rate x decay^(depth from the top)."),
        None,
    ),
    _option("adapters", _typed_option(str | None, "lora: train LoRA adapters only."), None),
    _option("lora_rank", _typed_option(int, "LoRA rank."), 8),
    _option("lora_alpha", _typed_option(float, "LoRA alpha."), 16.0),
    _option("lora_dropout", _typed_option(float, "LoRA dropout."), 0.1),
    _option("epochs", Epochs, 3.0),
    _option("max_steps", MaxSteps, -1),
    _option("batch_size", TrainBatch, 12),
    _option("learning_rate", LearningRate, 5e-5),
    _option("scheduler", Scheduler, "linear"),
    _option("warmup", _typed_option(float, "Warm-up: share of the run (< 1) or steps."), 0.1),
    _option("weight_decay", WeightDecay, 0.001),
    _option(
        "eval_every",
        _typed_option(int | None, "Steps between validations (default: an epoch)."),
        None,
    ),
    _option("keep_checkpoints", KeepCheckpoints, 1),
    _option("patience", Patience, None),
    _option(
        "classifier_dropout",
        _typed_option(float | None, "Dropout before the head (default: the model's)."),
        None,
    ),
)


def _takes_options(
    **groups: tuple[inspect.Parameter, ...],
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command each group's options in the place of its keyword-only parameter of
    the group's name, which receives them as a dict (option name: value)."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command, eval_str=True)
        parameters = []
        for parameter in signature.parameters.values():
            parameters.extend(groups.get(parameter.name, (parameter,)))

        @functools.wraps(command)
        def with_options(*args: Any, **kwargs: Any) -> None:
            for name, group in groups.items():
                kwargs[name] = {option.name: kwargs.pop(option.name) for option in group}
            command(*args, **kwargs)

        with_options.__signature__ = signature.replace(parameters=parameters)
        return with_options

    return decorate


def _summarize(
    command: str, result: RunResult, headline: str, *, hide: tuple[str, ...] = (), **fields: Any
) -> None:
    """Print ``sc command``'s summary: ``headline`` with its ``{...}`` fields filled from the
    run's metrics (and ``fields``, which win), then the table of the metrics but ``hide``."""
    from genoformer.engine.console import print_summary

    metrics = result.metrics
    shown = {k: v for k, v in metrics.items() if k not in hide}
    table = type(result)(result.run_dir, shown, result.outputs) if hide else result
    print_summary(f"sc {command}", table, headline.format_map({**metrics, **fields}))


def _flags(scope: dict[str, Any], *groups: str) -> dict[str, Any]:
    """A command's parameters by name, the options of its ``groups`` among them."""
    flags = dict(scope)
    for group in groups:
        flags.update(flags.pop(group))
    return flags


@app.command("tokenize")
def tokenize_command(
    source: Annotated[Path, typer.Argument(help=".h5ad, .loom, .zarr, 10x .h5 or directory.")],
    out: Annotated[Path, typer.Option(help="Corpus directory (Hugging Face datasets).")],
    vocabulary: Annotated[
        str, typer.Option(help="V1, V2 (Geneformer's) or a vocabulary from `sc medians`.")
    ] = "V2",
    dictionaries: Dictionaries = None,
    attribute: Annotated[
        list[str] | None, typer.Option(help="Cell attribute (obs column) to keep; repeatable.")
    ] = None,
    encoding: Annotated[str, typer.Option(help="rank (Geneformer) or binned (scGPT).")] = "rank",
    n_bins: Annotated[int, typer.Option(help="Bins of the binned encoding.")] = 51,
    layer: Layer = None,
    gene_id_column: GeneIdColumn = None,
    processes: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    chunk_size: Annotated[int, typer.Option(help="Cells per chunk.")] = 1024,
    min_gene_share: Annotated[
        float, typer.Option(help="Least share of the input's genes found in the vocabulary.")
    ] = 0.2,
    backed: Backed = None,
    overwrite: Overwrite = False,
) -> None:
    """Rank value encoding of each cell, exactly as Geneformer does it."""
    flags = dict(locals())
    from genoformer.sc.tokenizer import tokenize

    flags["cell_attributes"] = flags.pop("attribute") or None
    _summarize(
        "tokenize",
        tokenize(str(flags.pop("source")), **flags),
        "{n_cells} cells tokenized in {seconds:.1f} s ({gene_share:.1%} of genes in the vocabulary)",
    )


@app.command("medians")
def medians_command(
    inputs: Annotated[list[Path], typer.Argument(help="Corpus files (.h5ad, .loom, ...).")],
    out: Annotated[Path, typer.Option(help="Folder for the vocabulary and the gene table.")],
    name: Annotated[str, typer.Option(help="Name of the vocabulary.")] = "custom",
    input_size: Annotated[int, typer.Option(help="Model input size it goes with.")] = 4096,
    streaming: Annotated[
        bool, typer.Option(help="Bounded memory (approximate medians) for large corpora.")
    ] = False,
    layer: Layer = None,
    gene_id_column: GeneIdColumn = None,
    backed: Backed = None,
    overwrite: Overwrite = False,
) -> None:
    """Each gene's non-zero median of normalised expression: a vocabulary for `sc tokenize`."""
    flags = dict(locals())
    from genoformer.engine.runs import RunResult
    from genoformer.sc.medians import TABLE_FILE, VOCABULARY_FILE, gene_medians

    vocabulary = gene_medians([str(p) for p in flags.pop("inputs")], **flags, progress=True)
    outputs = {"vocabulary": out / VOCABULARY_FILE, "table": out / TABLE_FILE}
    written = RunResult(out, {"genes_with_median": len(vocabulary.medians)}, outputs)
    _summarize("medians", written, "{genes_with_median} gene medians written")


@app.command("pretrain")
def pretrain_command(
    corpus: Annotated[list[Path], typer.Argument(help="Corpus directories from `sc tokenize`.")],
    out: RunOut,
    model: Annotated[
        str, typer.Option(help="Preset (tiny, small, gf-6L-30M-i2048, ...) or checkpoint dir.")
    ] = "tiny",
    vocabulary: CorpusVocabulary = None,
    dictionaries: Dictionaries = None,
    epochs: Epochs = 3.0,
    max_steps: MaxSteps = -1,
    batch_size: TrainBatch = 12,
    learning_rate: LearningRate = 1e-3,
    scheduler: Scheduler = "linear",
    warmup: Annotated[
        float | None,
        typer.Option(help="Warm-up: share of the run (< 1) or steps (default: 10,000, <= 10%)."),
    ] = None,
    weight_decay: WeightDecay = 0.001,
    eval_every: Annotated[
        int | None,
        typer.Option(help="Steps between evaluations/checkpoints (default: an epoch, <= 1000)."),
    ] = None,
    keep_checkpoints: KeepCheckpoints = 2,
    patience: Patience = None,
    held_out: Annotated[float, typer.Option(help="Share of cells held out.")] = 0.05,
    max_cells: Annotated[int | None, typer.Option(help="Use at most this many cells.")] = None,
    max_length: Annotated[
        int | None, typer.Option(help="Truncate cells to this many tokens (default: never).")
    ] = None,
    mask_probability: Annotated[float, typer.Option(help="Share of genes masked.")] = 0.15,
    seed: Annotated[int, typer.Option(help="Seed of the model, split, batches, masks.")] = 0,
    device: Device = "auto",
    num_workers: NumWorkers = 0,
    resume: Resume = False,
    overwrite: Overwrite = False,
) -> None:
    """Masked-gene pretraining of a Geneformer-compatible model (several devices: torchrun)."""
    flags = dict(locals())
    from genoformer.sc.pretraining import pretrain

    result = pretrain([str(p) for p in flags.pop("corpus")], **flags)
    if "frequency_loss" in result.metrics:  # the first process of a torchrun run reports
        _summarize(
            "pretrain",
            result,
            "held-out masked-gene loss {heldout_loss:.4f} (frequency baseline "
            "{frequency_loss:.4f}), accuracy {heldout_accuracy:.3f} "
            "(baseline {frequency_accuracy:.3f}) after {steps} steps",
        )


@app.command("embed")
def embed_command(
    model: Checkpoint,
    corpus: Corpus,
    out: RunOut,
    emb_mode: Annotated[
        str, typer.Option(help="cell (mean over the genes) or cls (the <cls> token, V2).")
    ] = "cell",
    emb_layer: EmbLayer = -1,
    batch_size: Annotated[int, typer.Option(help="Cells per forward pass.")] = 16,
    genes: Annotated[bool, typer.Option(help="Also write gene embeddings.")] = False,
    adata: Annotated[
        Path | None, typer.Option(help="The .h5ad the corpus came from: gets .obsm/.varm.")
    ] = None,
    label: Annotated[
        str | None, typer.Option(help="Cell attribute for the UMAP and the heatmap.")
    ] = None,
    vocabulary: CorpusVocabulary = None,
    dictionaries: Dictionaries = None,
    device: Device = "auto",
    max_cells: Annotated[int | None, typer.Option(help="Embed the first N cells only.")] = None,
    seed: UmapSeed = 0,
    overwrite: Overwrite = False,
) -> None:
    """Cell (and gene) embeddings from a chosen layer, into tables, AnnData and pictures."""
    flags = dict(locals())
    from genoformer.sc.embeddings import embed

    _summarize(
        "embed",
        embed(flags.pop("model"), flags.pop("corpus"), **flags),
        "{n_cells:,} cell embeddings ({hidden_size} dimensions, {emb_mode} mode, "
        "emb_layer {emb_layer})",
    )


@app.command("plot-embeddings")
def plot_embeddings_command(
    table: Annotated[Path, typer.Argument(help="cell_embeddings.parquet (or .csv) of `sc embed`.")],
    label: Annotated[str, typer.Option(help="Cell attribute that colours the pictures.")],
    out: Annotated[Path, typer.Option(help="Folder for the pictures.")],
    seed: UmapSeed = 0,
) -> None:
    """UMAP and clustered heatmap (PNG and interactive HTML) from an embeddings table."""
    from genoformer.engine.runs import RunResult
    from genoformer.sc.plots import plot_embeddings

    written = plot_embeddings(table, label=label, out=out, seed=seed)
    n_files = sum(len(v) for v in written.values())
    _summarize("plot-embeddings", RunResult(out, {"files": n_files}, written), "")


@app.command("perturb")
def perturb_command(
    model: Checkpoint,
    corpus: Corpus,
    out: RunOut,
    delete: Annotated[
        list[str] | None,
        typer.Option(help="Gene (Ensembl id or symbol) to delete; repeat to delete jointly."),
    ] = None,
    overexpress: Annotated[
        list[str] | None,
        typer.Option(help="Gene to move to the front; repeat to overexpress jointly."),
    ] = None,
    all_genes: Annotated[
        bool, typer.Option(help="Perturb each gene of each cell in turn (see --perturb-type).")
    ] = False,
    perturb_type: Annotated[
        str, typer.Option(help="With --all-genes: delete or overexpress.")
    ] = "delete",
    anchor_gene: Annotated[
        str | None,
        typer.Option(
            help="Perturb this gene together with each other gene (of --all-genes, or each "
            "--delete/--overexpress gene), pair by pair, in the cells that express it."
        ),
    ] = None,
    cell: Annotated[
        list[int] | None, typer.Option(help="Corpus row to perturb; repeatable (default: all).")
    ] = None,
    max_cells: Annotated[int | None, typer.Option(help="Perturb at most N cells.")] = None,
    emb_mode: Annotated[
        str,
        typer.Option(
            help="cell (mean gene shift) or cls (the <cls> token, V2); cell_and_gene or "
            "cls_and_gene: also every affected gene's shift (gene_shifts table)."
        ),
    ] = "cell",
    emb_layer: EmbLayer = -1,
    batch_size: Annotated[int, typer.Option(help="Perturbed copies per forward pass.")] = 32,
    chunk_cells: Annotated[int, typer.Option(help="Cells per chunk written (resume).")] = 16,
    precision: Annotated[str, typer.Option(help="fp32 (default) or bf16.")] = "fp32",
    state_attribute: Annotated[
        str | None, typer.Option(help="In silico treatment: the cell attribute of the states.")
    ] = None,
    start_state: Annotated[str | None, typer.Option(help="State of the cells perturbed.")] = None,
    goal_state: Annotated[str | None, typer.Option(help="State to move them towards.")] = None,
    alt_state: Annotated[
        list[str] | None, typer.Option(help="Another state to measure; repeatable.")
    ] = None,
    vocabulary: CorpusVocabulary = None,
    dictionaries: Dictionaries = None,
    device: Device = "auto",
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: all).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue a stopped run in --out.")] = False,
    overwrite: Overwrite = False,
) -> None:
    """In silico deletion or overexpression: how far each cell's gene embeddings move."""
    flags = dict(locals())
    from genoformer.engine.errors import InputError
    from genoformer.sc.perturbation import perturb

    named = {k: flags.pop(k) for k in ("delete", "overexpress")}
    given = [k for k, genes in named.items() if genes]
    if len(given) > 1 or (given and all_genes):
        raise InputError(
            "--delete, --overexpress and --all-genes exclude each other",
            where="--delete/--overexpress/--all-genes",
            fix="perturb one way per run: genes to delete, genes to overexpress, or all genes",
        )
    if given:
        flags["perturb_type"], flags["genes"] = given[0], tuple(named[given[0]])
    flags["alt_states"] = tuple(flags.pop("alt_state") or ())
    cells = flags.pop("cell")
    flags["cells"] = tuple(cells) if cells else None
    result = perturb(flags.pop("model"), flags.pop("corpus"), **flags)
    metrics = result.metrics
    if metrics.get("n_cells_without_anchor"):
        typer.echo(
            f"note: {metrics['n_cells_without_anchor']:,} selected cells do not express the "
            f"anchor gene {metrics['anchor_gene']} and were left out (n_cells_without_anchor)",
            err=True,
        )
    if metrics.get("absent_from_every_cell"):
        typer.echo(
            f"warning: no selected cell holds {metrics['absent_from_every_cell']} "
            "(listed with 0 cells in genes.tsv)",
            err=True,
        )
    _summarize(
        "perturb",
        result,
        "{n_perturbations:,} perturbations ({perturb_type}) of {n_cells_perturbed:,} cells "
        "in {seconds:.1f} s",
    )


@app.command("perturb-stats")
def perturb_stats_command(
    run: Annotated[Path, typer.Argument(help="Run directory of `sc perturb`.")],
    out: Annotated[Path, typer.Option(help="Run directory of the statistics.")],
    mode: Annotated[
        str,
        typer.Option(
            help="vs_null, goal_state_shift, mixture_model, aggregate_data or "
            "aggregate_gene_shifts."
        ),
    ] = "vs_null",
    null: Annotated[
        Path | None, typer.Option(help="vs_null: the `sc perturb` run of the null cells.")
    ] = None,
    goal_state: Annotated[
        str | None, typer.Option(help="goal_state_shift: the goal state of the run.")
    ] = None,
    alt_states: Annotated[
        list[str] | None,
        typer.Option(
            "--alt-state",
            help="goal_state_shift: an alternative state (repeatable; default: the run's).",
        ),
    ] = None,
    plots: Annotated[
        bool, typer.Option(help="Draw the volcano, distributions and states pictures.")
    ] = True,
    overwrite: Overwrite = False,
) -> None:
    """Statistics over a perturbation run's cells: rank-sum tests with BH FDR, or every value."""
    flags = dict(locals())
    from genoformer.sc.perturbation_stats import perturb_stats

    result = perturb_stats(flags.pop("run"), **flags)
    metrics = result.metrics
    called = metrics.get("n_significant")
    tail = "" if called is None else f", {called} at FDR < 0.05"
    if metrics.get("n_impact") is not None:
        tail = f", {metrics['n_impact']} in the impact component"
    _summarize("perturb-stats", result, "{n_rows:,} rows ({mode}){tail}", mode=mode, tail=tail)


@app.command("classify")
@_takes_options(
    training=(*_FINE_TUNING_OPTIONS, *_run_options("Seed of the head, the splits and the batches."))
)
def classify_command(
    corpus: Annotated[Path, typer.Argument(help="Corpus directory holding the label attribute.")],
    model: FineTuneFrom,
    label: Annotated[
        list[str], typer.Option(help="Cell attribute to predict; repeat for multi-task.")
    ],
    out: RunOut,
    group_by: Annotated[
        str | None, typer.Option(help="Attribute whose groups never straddle two splits.")
    ] = None,
    vocabulary: CorpusVocabulary = None,
    dictionaries: Dictionaries = None,
    state: Annotated[
        list[str] | None, typer.Option(help="Classify only this class; repeatable.")
    ] = None,
    rare_threshold: Annotated[
        float, typer.Option(help="Leave out classes with less than this share of the cells.")
    ] = 0.0,
    max_cells_per_class: Annotated[
        int | None, typer.Option(help="Keep at most this many cells of each class.")
    ] = None,
    folds: Annotated[int, typer.Option(help="1: one split; k: k-fold cross-validation.")] = 1,
    test_share: Annotated[float, typer.Option(help="Share tested (one split).")] = 0.2,
    eval_share: Annotated[float, typer.Option(help="Share of training cells validated.")] = 0.1,
    pooling: Annotated[str, typer.Option(help="auto, cls (V2) or mean (of the genes).")] = "auto",
    task_weight: Annotated[
        list[float] | None,
        typer.Option(help="Multi-task: a label's weight in the loss; one per --label, in order."),
    ] = None,
    *,
    training: dict[str, Any],
) -> None:
    """Fine-tune a model to classify cells (k folds; several --label: a head per label)."""
    flags = _flags(locals(), "training")
    from genoformer.sc.classification import classify

    state = flags.pop("state")
    flags["states"] = tuple(state) if state else None
    weights = flags.pop("task_weight")
    flags["task_weights"] = tuple(weights) if weights else None
    labels = flags.pop("label")
    flags["label"] = labels[0] if len(labels) == 1 else labels
    result = classify(flags.pop("corpus"), **flags)
    metrics = result.metrics
    tasks = metrics.get("tasks") or {labels[0]: metrics}
    scores = "; ".join(
        (f"{name}: " if len(tasks) > 1 else "")
        + f"accuracy {found['accuracy']:.3f}, macro F1 {found['macro_f1']:.3f}"
        for name, found in tasks.items()
    )
    first = next(iter(tasks.values()))
    _summarize(
        "classify",
        result,
        "{scores} on {n_test:,} test cells ({n_classes} classes{n_folds}); "
        "{trainable_parameters:,} of {total_parameters:,} parameters trained",
        hide=("folds", "per_class_f1", "tasks"),
        scores=scores,
        n_test=first["n"],
        n_classes=len(first["classes"]),
        n_folds=f", {flags['folds']} folds" if flags["folds"] > 1 else "",
    )


@app.command("classify-genes")
@_takes_options(
    training=(*_FINE_TUNING_OPTIONS, *_run_options("Seed of the head, the folds and the batches."))
)
def classify_genes_command(
    corpus: Corpus,
    model: FineTuneFrom,
    gene_classes: Annotated[
        Path, typer.Option(help="TSV: gene (Ensembl id or symbol), class; a gene a line.")
    ],
    out: RunOut,
    vocabulary: CorpusVocabulary = None,
    dictionaries: Dictionaries = None,
    folds: Annotated[int, typer.Option(help="Cross-validation folds over the genes.")] = 5,
    min_genes_per_class: Annotated[
        int, typer.Option(help="Least held-out genes of each class in each fold.")
    ] = 5,
    max_cells: Annotated[
        int | None, typer.Option(help="At most this many cells per fold's training/scoring.")
    ] = None,
    eval_share: Annotated[float, typer.Option(help="Share of training genes validated.")] = 0.1,
    *,
    training: dict[str, Any],
) -> None:
    """Fine-tune a Geneformer-compatible model to classify genes (cross-validated by gene)."""
    flags = _flags(locals(), "training")
    from genoformer.sc.gene_classification import classify_genes

    result = classify_genes(flags.pop("corpus"), **flags)
    _summarize(
        "classify-genes",
        result,
        "AUC {auroc:.3f} (folds {auroc_mean:.3f} +- {auroc_sd:.3f}), accuracy {accuracy:.3f} "
        "on {n:,} held-out genes ({n_classes} classes, {n_folds} folds)",
        hide=("folds",),
        auroc_mean=result.metrics["auroc_mean"] or float("nan"),
        n_classes=len(result.metrics["classes"]),
        n_folds=folds,
    )


@app.command("predict")
def predict_command(
    run: Annotated[Path, typer.Argument(help="Run directory of `sc classify`.")],
    cells: Annotated[
        Path,
        typer.Argument(help="Corpus directory, or an .h5ad (tokenized with the run's vocabulary)."),
    ],
    out: Annotated[Path, typer.Option(help="Run directory for the predictions.")],
    vocabulary: CorpusVocabulary = None,
    dictionaries: Dictionaries = None,
    batch_size: Annotated[int, typer.Option(help="Cells per forward pass.")] = 32,
    device: Device = "auto",
    task: Annotated[
        str | None, typer.Option(help="Multi-task run: the label whose head predicts.")
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """Label cells (a corpus, or an .h5ad: labels into .obs/.obsm) with a fine-tuned classifier."""
    flags = dict(locals())
    from genoformer.sc.classification import predict

    result = predict(flags.pop("run"), flags.pop("cells"), **flags)
    _summarize("predict", result, "{n_cells:,} cells labelled")
