"""`python -m namae`: the same command line as `namae`."""

from namae.cli import main

main()
