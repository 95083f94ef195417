"""The ``hourcast`` command line (``main``): one command per user task, grouped by stage.

The top of the import order: it may import everything; nothing imports it.
"""
