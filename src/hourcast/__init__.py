"""hourcast: next-hour close forecasts for crypto pairs.

Importing it runs nothing: the entry points (the ``hourcast`` command, ``flows``, the Bento service) apply
what a process needs before Feast is imported (``hourcast.compat.typeguard``).
"""

__version__ = "0.1.0"
