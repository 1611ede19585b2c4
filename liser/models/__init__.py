"""Neural networks of LiSER."""
