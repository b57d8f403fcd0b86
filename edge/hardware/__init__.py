"""Adapters from configuration to drivers: the only place ``edge`` touches hardware."""
