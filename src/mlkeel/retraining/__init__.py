"""Retraining: fresh data, train, evaluate against the champion, gate, register, deploy."""
