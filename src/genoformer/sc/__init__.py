"""sc: a Geneformer-compatible foundation model for single-cell transcriptomes."""
