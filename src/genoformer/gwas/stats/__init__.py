"""Classical statistics: QC, association, multiple testing, PCA, the Dask engine."""
