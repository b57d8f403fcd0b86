"""Local HTTP: the kiosk's and the operator's JSON API under /api/v1, and /metrics."""
