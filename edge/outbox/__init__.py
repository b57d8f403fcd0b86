"""The outbox: events written with the changes they report, waiting for upstream delivery."""
