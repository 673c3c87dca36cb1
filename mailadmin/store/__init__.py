"""The rule store: SQLAlchemy 2.x models, queries returning frozen snapshots, migrations."""
