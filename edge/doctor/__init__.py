"""``edge doctor``: probe every configured device, the broker, the models and the database,
read-only, and say what works, what does not, and what a technician should do next."""
