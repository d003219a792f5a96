"""One module per `edgecc` subcommand; each defines `command`."""
