"""The environment every child process gets: this one's, without the job's credentials.

Children run third-party code (a local sdist's `setup.py`, build backends, the
installed packages' imports in the smoke test), so nothing that lets a job act
on GitHub reaches them: the inputs (`INPUT_GITHUB-TOKEN`, `INPUT_PYTHON-MIRROR-TOKEN`,
a `python-mirror` with a password), the workflow token and the runner's service
tokens. Index settings (`PIP_*`, `UV_*`), certificates (`SSL_CERT_*`) and proxies
stay: installs need them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Names removed outright, and prefixes of names removed (compared in upper case).
CREDENTIAL_VARIABLES = frozenset(
    {
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "ACTIONS_RESULTS_URL",
        "ACTIONS_CACHE_URL",
    }
)
CREDENTIAL_PREFIXES = ("INPUT_", "ACTIONS_RUNTIME_", "ACTIONS_ID_TOKEN_REQUEST_")


def is_credential(name: str) -> bool:
    upper = name.upper()
    return upper in CREDENTIAL_VARIABLES or upper.startswith(CREDENTIAL_PREFIXES)


def child_environ(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's environment) without the job's credentials."""
    source = os.environ if env is None else env
    return {name: value for name, value in source.items() if not is_credential(name)}
