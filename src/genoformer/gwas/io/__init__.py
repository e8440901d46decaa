"""Reading genotypes and phenotypes, and simulating cohorts."""
