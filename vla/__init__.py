"""vla: a driving vision-language-action model that reasons before it acts."""

__version__ = "0.1.0"
