"""One module per screen group of the admin page; routes.py wires them."""
