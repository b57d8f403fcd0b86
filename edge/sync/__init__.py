"""Upstream sync over MQTT: the outbox drained in order, status and state, signed commands."""
