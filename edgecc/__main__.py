"""`python -m edgecc` runs the command line."""

from edgecc.cli import main

if __name__ == "__main__":
    main()
