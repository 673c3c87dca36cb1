"""Fixtures shared by every test tier: real scanners, failure fakes, test GeoIP data."""

pytest_plugins = ["tests.fixtures.scanners", "tests.fixtures.geo"]
