"""The decision engine: envelope + message in, one outcome per recipient out."""
