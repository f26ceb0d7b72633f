"""`python -m dispatch ...`: the same command as the `dispatch` console script."""

from dispatch.entrypoints.cli import main

raise SystemExit(main())
