"""A virtual GlobalPlatform card with the CoolKey applet (documented in simulator/README.md)."""
