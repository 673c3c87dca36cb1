"""mailadmin: the mail-account administration daemon of an ISP."""

__version__ = "0.1.0"
