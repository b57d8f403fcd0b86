"""RFID smart cabinets: inventory by rounds, shopper sessions, settlement into orders."""
