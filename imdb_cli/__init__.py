"""imdb: fine-tune, compare and explain text encoders on IMDB sentiment."""

__version__ = "0.1.0"
