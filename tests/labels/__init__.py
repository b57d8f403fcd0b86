"""Tests of the shelf label renderer (edge.labels.rendering) and its golden images."""
