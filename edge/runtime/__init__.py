"""Running the controller: the supervisor of its long-lived tasks."""
