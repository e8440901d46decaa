"""Figures: association (Manhattan, QQ, PCs) and importance (tracks, pairs)."""
