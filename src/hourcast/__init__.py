"""hourcast: next-hour close forecasts for crypto pairs."""

__version__ = "0.1.0"
