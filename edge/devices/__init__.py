"""Device availability: which devices answer, reported as events and metrics."""
