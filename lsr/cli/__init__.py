"""The typer CLI (`lsr`)."""
