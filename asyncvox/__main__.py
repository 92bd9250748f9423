"""``python -m asyncvox`` runs the command line."""

from .cli import main

main()
