"""hourcast: next-hour close forecasts for crypto pairs."""

from hourcast.compat import skip_feast_instrumentation

__version__ = "0.1.0"

skip_feast_instrumentation()  # before anything imports Feast (see hourcast.compat)
