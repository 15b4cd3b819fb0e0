"""The config file: the typed model and its loader (model), the value rules (rules), durations."""
