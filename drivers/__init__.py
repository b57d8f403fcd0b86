"""Hardware drivers: one module per wire protocol, each with a simulator speaking the same bytes.

Nothing here imports ``edge``: drivers know protocols and serial ports, not lockers or orders.
"""
