"""explainft: explanation-enhanced fine-tuning of conversation raters, as a DVC pipeline."""

__version__ = "0.1.0"
