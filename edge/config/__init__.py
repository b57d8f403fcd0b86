"""Configuration: the YAML schema and its loader."""

from edge.config.loader import ConfigError, Problem, load_config, parse_config
from edge.config.models import EdgeConfig, Zone

__all__ = ["ConfigError", "EdgeConfig", "Problem", "Zone", "load_config", "parse_config"]
