"""The ``hourcast`` command line, grouped by stage: ``app`` (the typer app, every command in order, the
one error printer), ``data``, ``features``, ``model``, ``serve`` and ``stack`` (the commands), ``options``
(what several commands share) and ``render`` (everything the commands print).

The top of the import order: it may import everything; nothing imports it.
"""
