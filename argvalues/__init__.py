"""argvalues: find the human values behind arguments (Touché23-ValueEval)."""

__version__ = "0.1.0"
