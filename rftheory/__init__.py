"""rftheory: the law of data reconstruction for random features, as software."""
__version__ = "0.1.0"
