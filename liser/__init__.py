"""LiSER."""
