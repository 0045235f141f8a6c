"""`python -m blindframe`: the same as the `blindframe` command."""

from blindframe._cli import main

main()
