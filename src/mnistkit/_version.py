"""The package version: one place, read by the package root, the User-Agent and the build."""

__version__ = "0.1.0"
