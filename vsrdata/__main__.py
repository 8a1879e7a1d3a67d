"""`python -m vsrdata ...` (also what `torchrun -m vsrdata train ...` runs)."""

from vsrdata.cli import main

if __name__ == "__main__":
    main()
