"""Monitoring: baseline profiles, drift statistics, summaries, the monitor job and alerts."""
