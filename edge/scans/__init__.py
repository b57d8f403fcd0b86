"""Codes scanned at the site's kiosks, from whatever device read them, for the kiosk flows."""
