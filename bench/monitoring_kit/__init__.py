"""Pieces of bench/monitoring.py: traffic, stores, child processes, baselines, report."""
