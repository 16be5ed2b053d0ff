"""Pure data types. Nothing here does I/O or imports azure, fsspec, rich or typer."""
