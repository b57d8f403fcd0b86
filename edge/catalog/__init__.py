"""The catalogue: products and their versioned prices, maintained upstream."""

from edge.catalog.prices import PriceBook, Quote

__all__ = ["PriceBook", "Quote"]
