"""mlkeel: keep machine-learning models working after they ship."""

__version__ = "0.1.0"
