"""`python -m portpy_action`: the GitHub Action (the CLI is `portpy`)."""

from portpy_action.github.action import main

if __name__ == "__main__":
    raise SystemExit(main())
