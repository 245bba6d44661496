"""`python -m harness.cli`: the tuneval command (how torchrun starts training workers)."""

from harness.cli import main

main()
