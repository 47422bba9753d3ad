"""``python -m service`` runs the API server (see :mod:`service.main`)."""

from service.main import main

main()
