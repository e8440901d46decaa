"""The genotype transformer: inputs, network, baselines, training, attribution, explain."""
