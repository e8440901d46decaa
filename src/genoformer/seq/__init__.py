"""seq: DNA sequence to function."""
