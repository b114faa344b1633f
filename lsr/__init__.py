"""lsr: learned sparse retrieval."""
__version__ = "0.1.0"
