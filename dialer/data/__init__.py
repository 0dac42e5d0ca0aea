"""Data files the package reads at run time (made by the modules that describe them)."""
