"""One module per CLI command; each is a thin wrapper over one core function."""
