"""See the package docstring of speechprune."""
