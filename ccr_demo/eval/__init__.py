"""Evaluation: metrics (ranks, R@K, MRV, P@K), the re-ranking rule, evaluation reports."""
