"""ballistics: forensic comparison of fired cartridge cases.

The package holds the science and the lab's own data. It never prints, exits or draws
progress bars; it returns values and raises the typed errors of :mod:`ballistics.errors`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ballistics")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

SOFTWARE_NAME = "ballistics"
