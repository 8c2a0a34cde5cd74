"""GlobalPlatform host side: keys, primitives, secure channel sessions (GPC 2.3.1, Amd D)."""
