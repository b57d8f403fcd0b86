"""Smart lockers: compartments, courier deposit, pickup, expiry, alarms, boot reconciliation."""
