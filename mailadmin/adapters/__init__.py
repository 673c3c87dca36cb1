"""MTA adapters: milter, Postfix policy delegation and the SMTP content filter (SPEC §10)."""
