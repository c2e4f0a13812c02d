"""Exchange between laboratories: identities, partner trust and signed, encrypted bundles.

This package may use :mod:`ballistics` (records), never the other way round. It returns
values and raises the typed errors of :mod:`exchange.errors`; it never prints or exits.
"""
