"""The private (or not public) APIs of third-party libraries that hourcast relies on, one module per
library, so that a library upgrade has one place to re-check:

* ``compat.feast``: the Redis client under Feast's online store; ``feast apply``'s plan-and-diff path;
* ``compat.bentoml``: the base class of BentoML's model references (``ModelReference``);
* ``compat.ccxt``: a ccxt client's request spacing (``throttle``) and HTTP session (``session``);
* ``compat.great_expectations``: the progress-bar setting's type; one Data Docs page rendered in memory;
* ``compat.typeguard``: typeguard's decorator made to skip Feast (``skip_feast_instrumentation``), applied by
  the entry points (the ``hourcast`` command, ``flows``, the Bento service, the benchmarks, the test suite),
  never by ``import hourcast``.

Each module names the distribution it reaches into (``DISTRIBUTION``) and the versions it was checked
against (``CHECKED_VERSIONS``, a PEP 440 specifier: the release installed when it was checked, up to the next
minor). ``tests/unit/test_compat.py`` (and ``tests/integration/test_compat.py`` for what needs a server)
check each private API for real, and fail when the installed version leaves that range: an upgrade past it
means re-checking the module's functions, then widening ``CHECKED_VERSIONS``.

May import: nothing of hourcast. Only ``compat.bentoml`` imports its library at import time (a base class
must exist to be subclassed); the others import theirs inside their functions, if at all.
"""
