"""`python -m trainer.cli ...` is the `trainer` command."""

from trainer.cli.main import main

raise SystemExit(main())
