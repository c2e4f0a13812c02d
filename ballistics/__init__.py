"""ballistics: forensic comparison of fired cartridge cases.

The package holds the science and the lab's own data. It never prints, exits or draws
progress bars; it returns values and raises the typed errors of :mod:`ballistics.errors`.
"""

SOFTWARE_NAME = "ballistics"


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed package's metadata when first asked for.

    Reading the metadata scans the installed distributions, which every command would pay for
    at start-up if it were read on import.
    """
    if name != "__version__":
        raise AttributeError(f"module 'ballistics' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(SOFTWARE_NAME)
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0+unknown"
