"""Tools for testing code that uses phoenix_channels (and for our own tests)."""

from .chaos import ChaosProxy

__all__ = ["ChaosProxy"]
