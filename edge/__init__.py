"""Edge controller for unattended stores and smart lockers."""

__version__ = "0.1.0"
