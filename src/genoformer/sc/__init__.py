"""sc: a Geneformer-compatible foundation model for single-cell transcriptomes.

``genoformer.sc.tokenize(...)`` is ``genoformer sc tokenize ...``; the functions load on
first use, so that importing the package (and the command line's ``--help``) stays quick.
"""

from genoformer._lazy import lazy_exports

_EXPORTS = {
    "tokenize": "genoformer.sc.tokenizer",
    "load_corpus": "genoformer.sc.tokenizer",
    "gene_medians": "genoformer.sc.medians",
    "GeneVocabulary": "genoformer.sc.vocabulary",
    "open_cells": "genoformer.sc.io",
    "embed": "genoformer.sc.embeddings",
    "pretrain": "genoformer.sc.pretraining",
    "perturb": "genoformer.sc.perturbation",
    "PerturbSettings": "genoformer.sc.perturbation",
    "perturb_stats": "genoformer.sc.perturbation_stats",
    "classify": "genoformer.sc.classification",
    "predict": "genoformer.sc.classification",
    "classify_genes": "genoformer.sc.gene_classification",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports("genoformer.sc", _EXPORTS)
