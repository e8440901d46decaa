"""genoformer: deep learning on genomic data (gwas, sc, seq) over one shared engine."""

__version__ = "0.1.0"
