"""migrator: move a live MySQL database off RDS onto self-managed MySQL, resumably."""

__version__ = "0.1.0"
