"""amlport: back up, audit and migrate Azure Machine Learning workspaces from their storage."""

__version__ = "0.1.0"
