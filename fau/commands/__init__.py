"""`fau` subcommands, discovered by `shared.cli` (one module per command)."""
