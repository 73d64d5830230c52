"""Tools for testing code that uses phoenix_channels (and for our own tests):
:class:`ChaosProxy`, a TCP proxy that misbehaves on command, and
:func:`run_soak`, a long run through it with faults injected and invariants
checked (:mod:`.soak`)."""

from .chaos import ChaosProxy
from .soak import SoakConfig, SoakReport, run_soak

__all__ = ["ChaosProxy", "SoakConfig", "SoakReport", "run_soak"]
