"""The command groups of ``ballistics``, one module each; :mod:`cli` assembles them."""
