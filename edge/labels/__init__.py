"""Electronic shelf labels: what each label shows, rendered and sent to the shelf."""
