"""gwas: genotypes to phenotype, PLINK-grade association and the deep model."""
