"""Configuration: conf/, policies/, filters/ -> a frozen Config (SPEC §11)."""
