"""Evaluation of generated variations: metrics, the condition classifier, classical baselines."""
