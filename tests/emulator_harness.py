"""Re-export of :mod:`keyless.testing` under the name the tests import."""

from keyless.testing import EmulatorProcess, start_emulator

__all__ = ["EmulatorProcess", "start_emulator"]
