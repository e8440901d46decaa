"""gwas: genotypes to phenotype, PLINK-grade association and the deep model.

``genoformer.gwas.assoc(...)`` is ``genoformer gwas assoc ...`` (likewise ``simulate``,
``qc``, ``pca``, ``epistasis``, ``plot``, ``train``, ``predict``, ``explain``); they load on first use, so
that importing the package stays quick and the association commands never load torch.
"""

from genoformer._lazy import lazy_exports

_EXPORTS = {
    "simulate": "genoformer.gwas.io.simulate",
    "SimulateSettings": "genoformer.gwas.io.simulate",
    "qc": "genoformer.gwas.api",
    "pca": "genoformer.gwas.api",
    "assoc": "genoformer.gwas.api",
    "AssocSettings": "genoformer.gwas.api",
    "epistasis": "genoformer.gwas.api",
    "plot": "genoformer.gwas.api",
    "train": "genoformer.gwas.model.training",
    "GenotypeTrainSettings": "genoformer.gwas.model.training",
    "predict": "genoformer.gwas.model.training",
    "explain": "genoformer.gwas.model.explain",
    "ExplainSettings": "genoformer.gwas.model.explain",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports("genoformer.gwas", _EXPORTS)
