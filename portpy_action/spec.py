"""One validated build spec, whatever the inputs came from.

CLI flags, INPUT_* variables and config files all arrive as a mapping from
action.yml input names to strings; `BuildSpec.from_inputs` is the one place
where those strings are checked and turned into typed values. Every rule that
can reject an input lives here, so an error always names the input and the fix.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from portpy_action.choices import (
    EXTERNAL_LIB_POLICIES,
    FLAVORS,
    FORMATS,
    INSTALL_PROJECT_MODES,
    INSTALLERS,
    LAUNCHER_CHOICES,
    MODES,
    ExternalLibs,
    Flavor,
    Format,
    Installer,
    InstallProject,
    Launchers,
    Mode,
)
from portpy_action.errors import InputError
from portpy_action.options import action_inputs, input_defaults
from portpy_action.urls import Credentials, has_query, redact_url, split_credentials

DEFAULT_API_URL = "https://api.github.com"
PBS_DOWNLOAD_BASE = "https://github.com/astral-sh/python-build-standalone/releases/download"

_VERSION_RE = re.compile(r"^(?P<major>3)\.(?P<minor>\d{1,2})(?:\.(?P<patch>\d{1,3}))?(?P<ft>t)?$")
_TAG_RE = re.compile(r"^\d{8}$")
_TARGET_RE = re.compile(r"^[a-z0-9_]+-unknown-linux-(gnu|gnueabi|gnueabihf|musl)$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")
_GLIBC_RE = re.compile(r"^(\d+)\.(\d+)$")
_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_ARTIFACT_FORBIDDEN = set('":<>|*?\r\n\\/')
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off", ""}

# action.yml's default for github-token only means something on GitHub.
_EXPRESSION_RE = re.compile(r"^\$\{\{.*\}\}$")


@dataclass(frozen=True)
class PythonVersionRequest:
    """`3.12`, `3.12.12` or `3.13t`: what the user asked for, not yet resolved."""

    major: int
    minor: int
    patch: int | None = None
    freethreaded: bool = False

    @classmethod
    def parse(cls, text: str) -> PythonVersionRequest:
        match = _VERSION_RE.match(text.strip())
        if not match:
            raise InputError(
                "python-version",
                f"`{text}` is not a CPython version",
                hint="Use a minor line such as `3.12`, an exact version such as `3.12.12`, "
                "or `3.13t` for a free-threaded build",
            )
        patch = match["patch"]
        request = cls(3, int(match["minor"]), int(patch) if patch else None, bool(match["ft"]))
        if request.freethreaded and request.minor < 13:
            raise InputError(
                "python-version",
                f"free-threaded builds exist from 3.13 on, not for `{text}`",
                hint="Drop the `t`, or ask for `3.13t` or newer",
            )
        return request

    @property
    def minor_line(self) -> str:
        return f"{self.major}.{self.minor}"

    def matches(self, version: str) -> bool:
        """Whether a full `X.Y.Z` version satisfies this request."""
        parts = version.split(".")
        if len(parts) != 3 or parts[:2] != [str(self.major), str(self.minor)]:
            return False
        return self.patch is None or parts[2] == str(self.patch)

    def __str__(self) -> str:
        text = self.minor_line if self.patch is None else f"{self.minor_line}.{self.patch}"
        return text + ("t" if self.freethreaded else "")


def machine_target() -> str:
    """The pbs triple of this machine; never an x86_64_vN variant (those need newer CPUs)."""
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    return f"{arch}-unknown-linux-gnu"


def default_cache_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "portpy"


@dataclass(frozen=True)
class RuntimeRequest:
    """Everything the runtime stage needs to put a verified interpreter on disk."""

    python_version: PythonVersionRequest
    build_tag: str
    target: str
    flavor: Flavor
    cache_dir: Path
    mirror: str | None = None
    archive: Path | None = None
    archive_sha256: str | None = None
    api_url: str = DEFAULT_API_URL
    token: str | None = field(default=None, repr=False)
    # For the mirror's origin only; `mirror` itself never holds credentials.
    mirror_credentials: Credentials | None = field(default=None, repr=False)
    mirror_token: str | None = field(default=None, repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values no log line may show."""
        password = self.mirror_credentials.password if self.mirror_credentials else ""
        return tuple(s for s in (self.token, self.mirror_token, password) if s)


@dataclass(frozen=True)
class BuildSpec:
    mode: Mode
    runtime: RuntimeRequest
    requirements: Path | None
    project_dir: Path | None
    exclude: tuple[str, ...]
    command: tuple[str, ...]
    name: str
    format: Format
    output_dir: Path
    installer: Installer
    compile_bytecode: bool
    max_glibc: tuple[int, int] | None
    external_libs: ExternalLibs
    smoke_test: bool
    smoke_skip_imports: tuple[str, ...]
    smoke_command: tuple[str, ...]
    upload_artifact: bool
    artifact_name: str
    retention_days: int | None
    attach_to_release: str
    install_project: InstallProject = "auto"  # build project-dir as a wheel
    launchers: Launchers = "none"  # `all`: bin/<script> per console script
    strip_binaries: bool = False  # strip symbols and debug info from python/'s ELF files
    # The raw values, as given: recorded in the manifest (tokens and the
    # mirror's credentials never are).
    inputs: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def github_token(self) -> str | None:
        return self.runtime.token

    def archive_name(self, python_version: str, target: str | None = None) -> str:
        """`<name>-<X.Y.Z>[t]-<target>.<format>`: what a build of this spec is called."""
        suffix = "t" if self.runtime.python_version.freethreaded else ""
        return f"{self.name}-{python_version}{suffix}-{target or self.runtime.target}.{self.format}"

    # ------------------------------------------------------------------
    @classmethod
    def from_inputs(
        cls,
        values: Mapping[str, str],
        *,
        base_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        workspace: Path | None = None,
    ) -> BuildSpec:
        """Validate raw input strings (missing ones take action.yml's default).

        Relative paths resolve against `base_dir` (the current folder, a config
        file's folder, or the workspace). With `workspace` set, as in the action,
        path inputs must also stay inside it. Each option has its own parser
        below; they run in input order, so the first bad input is the one named.
        """
        env = os.environ if env is None else env
        raw = _raw_inputs(values)
        base = (base_dir or workspace or Path.cwd()).resolve()
        paths = _PathResolver(base, workspace.resolve() if workspace else None)

        mode = _choice(raw, "mode", MODES)
        runtime = _runtime_request(raw, paths, env)
        requirements = paths.file("requirements", raw["requirements"])
        project_dir = paths.directory("project-dir", raw["project-dir"])
        output_dir = _output_dir(raw, paths)
        name = _name(raw, project_dir, env)
        command = _arguments(raw, "command")
        max_glibc = _max_glibc(raw)
        skip = _module_names(raw, "smoke-skip-imports")
        smoke_command = _arguments(raw, "smoke-command")
        artifact_name = _artifact_name(raw)
        retention = _retention_days(raw)
        release = _release_tag(raw)
        return cls(
            mode=mode,
            runtime=runtime,
            requirements=requirements,
            project_dir=project_dir,
            exclude=_list(raw["exclude"]),
            command=command,
            name=name,
            format=_choice(raw, "format", FORMATS),
            output_dir=output_dir,
            installer=_choice(raw, "installer", INSTALLERS),
            compile_bytecode=_bool(raw, "compile-bytecode"),
            max_glibc=max_glibc,
            external_libs=_choice(raw, "external-libs", EXTERNAL_LIB_POLICIES),
            smoke_test=_bool(raw, "smoke-test"),
            smoke_skip_imports=skip,
            smoke_command=smoke_command,
            upload_artifact=_bool(raw, "upload-artifact"),
            artifact_name=artifact_name,
            retention_days=retention,
            attach_to_release=release,
            install_project=_choice(raw, "install-project", INSTALL_PROJECT_MODES),
            launchers=_choice(raw, "launchers", LAUNCHER_CHOICES),
            strip_binaries=_bool(raw, "strip-binaries"),
            inputs=_recorded_inputs(raw),
        )


# ----------------------------------------------------------------------------
# one parser per option


def _raw_inputs(values: Mapping[str, str]) -> dict[str, str]:
    """Every input as a stripped string, action.yml's default where none is given."""
    known = action_inputs()
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InputError(
            unknown[0],
            "is not an input of this action",
            hint=f"Known inputs: {', '.join(known)}",
        )
    raw = input_defaults() | {k: str(v) for k, v in values.items()}
    return {k: v.strip() for k, v in raw.items()}


def _recorded_inputs(raw: Mapping[str, str]) -> dict[str, str]:
    """The raw values for the manifest: tokens and the mirror's credentials never are."""
    recorded = {k: v for k, v in raw.items() if k not in ("github-token", "python-mirror-token")}
    recorded["python-mirror"] = redact_url(raw["python-mirror"])
    return recorded


def _runtime_request(
    raw: Mapping[str, str], paths: _PathResolver, env: Mapping[str, str]
) -> RuntimeRequest:
    version = PythonVersionRequest.parse(raw["python-version"])
    tag = _build_tag(raw)
    target = _target(raw)
    mirror, mirror_credentials, mirror_token = _mirror_inputs(raw)
    archive, sha = _python_archive(raw, paths)
    cache_dir = _cache_dir(raw, paths, env)
    token = _github_token(raw, env)
    return RuntimeRequest(
        python_version=version,
        build_tag=tag,
        target=target,
        flavor=_choice(raw, "flavor", FLAVORS),
        cache_dir=cache_dir,
        mirror=mirror,
        archive=archive,
        archive_sha256=sha,
        api_url=(env.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/"),
        token=token or None,
        mirror_credentials=mirror_credentials,
        mirror_token=mirror_token,
    )


def _build_tag(raw: Mapping[str, str]) -> str:
    tag = raw["python-build-tag"] or "latest"
    if tag != "latest" and not _TAG_RE.match(tag):
        raise InputError(
            "python-build-tag",
            f"`{tag}` is not a python-build-standalone tag",
            hint="Use `latest` or a release date such as `20260114`",
        )
    return tag


def _target(raw: Mapping[str, str]) -> str:
    target = raw["target"] or machine_target()
    if not _TARGET_RE.match(target):
        raise InputError(
            "target",
            f"`{target}` is not a Linux python-build-standalone target",
            hint="Use e.g. `x86_64-unknown-linux-gnu` or `aarch64-unknown-linux-gnu`",
        )
    return target


def _mirror_inputs(raw: Mapping[str, str]) -> tuple[str | None, Credentials | None, str | None]:
    """python-mirror (without credentials), its credentials, and python-mirror-token."""
    mirror, mirror_credentials = _mirror(raw["python-mirror"])
    mirror_token = raw["python-mirror-token"] or None
    if mirror_token and not mirror:
        raise InputError(
            "python-mirror-token",
            "is only sent to `python-mirror`, which is empty",
            hint="Set python-mirror too, or drop the token",
        )
    if mirror_token and mirror_credentials:
        raise InputError(
            "python-mirror-token",
            "is given as well as credentials in `python-mirror`",
            hint="Authenticate to the mirror one way: drop one of them",
        )
    return mirror, mirror_credentials, mirror_token


def _python_archive(raw: Mapping[str, str], paths: _PathResolver) -> tuple[Path | None, str | None]:
    """python-archive and python-sha256, which only goes with it."""
    archive = paths.file("python-archive", raw["python-archive"])
    sha = raw["python-sha256"].lower() or None
    if sha and not _SHA256_RE.match(sha):
        raise InputError(
            "python-sha256", "must be 64 hexadecimal digits", hint="Use `sha256sum FILE`"
        )
    if sha and not archive:
        raise InputError(
            "python-sha256",
            "is only used with `python-archive`",
            hint="Set python-archive too, or drop it",
        )
    return archive, sha


def _cache_dir(raw: Mapping[str, str], paths: _PathResolver, env: Mapping[str, str]) -> Path:
    cache_dir = Path(raw["cache-dir"]).expanduser() if raw["cache-dir"] else default_cache_dir(env)
    if not cache_dir.is_absolute():
        cache_dir = paths.base / cache_dir
    if raw["cache-dir"] and paths.workspace is not None:
        _check_cache_dir(cache_dir, paths.workspace, env)
    return cache_dir


def _github_token(raw: Mapping[str, str], env: Mapping[str, str]) -> str:
    token = raw["github-token"]
    if _EXPRESSION_RE.match(token):
        token = ""
    return token or env.get("GITHUB_TOKEN", "")


def _output_dir(raw: Mapping[str, str], paths: _PathResolver) -> Path:
    output_dir = paths.resolve("output-dir", raw["output-dir"] or "dist")
    _check_writable("output-dir", output_dir)
    return output_dir


def _name(raw: Mapping[str, str], project_dir: Path | None, env: Mapping[str, str]) -> str:
    name = raw["name"] or _default_name(project_dir, env)
    if not _NAME_RE.match(name):
        raise InputError(
            "name",
            f"`{name}` cannot name a folder and an archive",
            hint="Use letters, digits, `.`, `_`, `+` and `-`, starting with a letter or digit",
        )
    return name


def _arguments(raw: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A command line (command, smoke-command), split as a shell would."""
    try:
        return tuple(shlex.split(raw[name]))
    except ValueError as exc:
        raise InputError(
            name, f"cannot be split into arguments ({exc})", hint="Check its quotes"
        ) from exc


def _max_glibc(raw: Mapping[str, str]) -> tuple[int, int] | None:
    if not raw["max-glibc"]:
        return None
    match = _GLIBC_RE.match(raw["max-glibc"])
    if not match:
        raise InputError(
            "max-glibc",
            f"`{raw['max-glibc']}` is not a glibc version",
            hint="Use e.g. `2.17` or `2.28`",
        )
    return (int(match[1]), int(match[2]))


def _module_names(raw: Mapping[str, str], name: str) -> tuple[str, ...]:
    modules = _list(raw[name])
    for module in modules:
        if not _MODULE_RE.match(module):
            raise InputError(
                name,
                f"`{module}` is not a module name",
                hint="List importable names such as `tkinter`",
            )
    return modules


def _artifact_name(raw: Mapping[str, str]) -> str:
    artifact_name = raw["artifact-name"]
    bad = sorted(set(artifact_name) & _ARTIFACT_FORBIDDEN)
    if bad:
        raise InputError(
            "artifact-name",
            f"`{artifact_name}` contains {' '.join(repr(c) for c in bad)}",
            hint='Artifact names may not contain " : < > | * ? \\ / or line breaks',
        )
    return artifact_name


def _retention_days(raw: Mapping[str, str]) -> int | None:
    if not raw["retention-days"]:
        return None
    try:
        retention = int(raw["retention-days"])
    except ValueError:
        retention = 0
    if not 1 <= retention <= 90:
        raise InputError(
            "retention-days",
            f"`{raw['retention-days']}` is not a whole number of days from 1 to 90",
            hint="Leave it empty for the repository's default",
        )
    return retention


def _release_tag(raw: Mapping[str, str]) -> str:
    release = raw["attach-to-release"]
    problem = tag_name_problem(release) if release else None
    if problem:
        raise InputError(
            "attach-to-release",
            f"{release!r} is not a tag name: {problem}",
            hint="Use a tag such as `v1.2.0` (git check-ref-format rules)",
        )
    return release


# ----------------------------------------------------------------------------
# small validators


_Choice = TypeVar("_Choice", bound=str)


def _choice(raw: Mapping[str, str], name: str, allowed: tuple[_Choice, ...]) -> _Choice:
    value = raw[name]
    for choice in allowed:
        if value == choice:
            return choice
    raise InputError(
        name,
        f"`{value}` is not one of {', '.join(allowed)}",
        hint=f"Use one of: {', '.join(allowed)}",
    )


def _bool(raw: Mapping[str, str], name: str) -> bool:
    value = raw[name].lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InputError(name, f"`{raw[name]}` is not a boolean", hint="Use `true` or `false`")


def _list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in re.split(r"[\n,]", text) if item.strip())


def _mirror(text: str) -> tuple[str | None, Credentials | None]:
    """python-mirror without its credentials, and the credentials."""
    mirror, credentials = split_credentials(text.rstrip("/"))
    if not mirror:
        return None, None
    if not re.match(r"^https?://[^/\s]+", mirror):
        raise InputError(
            "python-mirror",
            f"`{redact_url(mirror)}` is not an http(s) URL",
            hint="Give the base URL that replaces " + PBS_DOWNLOAD_BASE,
        )
    if has_query(mirror):
        raise InputError(
            "python-mirror",
            f"`{redact_url(mirror)}` has a query string or fragment",
            hint="Give the base URL the tag folders are under; for a token use "
            "`python-mirror-token`",
        )
    return mirror, credentials


def _default_name(project_dir: Path | None, env: Mapping[str, str]) -> str:
    # In a workspace the folder name is the runner's, not the project's: prefer the repo's.
    repo = env.get("GITHUB_REPOSITORY", "")
    if (
        repo
        and env.get("GITHUB_WORKSPACE")
        and project_dir == Path(env["GITHUB_WORKSPACE"]).resolve()
    ):
        return repo.rsplit("/", 1)[-1]
    if project_dir is not None:
        name = re.sub(r"[^A-Za-z0-9._+-]", "-", project_dir.name).lstrip("._+-")
        if name:
            return name
    return "python"


# Characters git refuses anywhere in a ref name (git check-ref-format), besides
# control characters and whitespace; and `#`, which cuts a release URL short.
_REF_FORBIDDEN = set("~^:?*[\\#")
_REF_SEQUENCES = ("..", "@{", "//")


def tag_name_problem(tag: str) -> str | None:
    """Why `tag` cannot be a git tag name (git check-ref-format's rules), or None."""
    bad = sorted({c for c in tag if c in _REF_FORBIDDEN or ord(c) < 0x20 or ord(c) == 0x7F})
    if bad or any(c.isspace() for c in tag):
        shown = " ".join(repr(c) for c in bad) if bad else "whitespace"
        return f"it contains {shown}"
    if tag.startswith("-"):
        return "it starts with `-`"
    for sequence in _REF_SEQUENCES:
        if sequence in tag:
            return f"it contains `{sequence}`"
    if tag == "@":
        return "`@` alone is not a ref name"
    if tag.startswith("/") or tag.endswith(("/", ".")):
        return "it starts with `/` or ends with `/` or `.`"
    if any(part.startswith(".") or part.endswith(".lock") for part in tag.split("/")):
        return "a part of it starts with `.` or ends with `.lock`"
    return None


def _check_cache_dir(path: Path, workspace: Path, env: Mapping[str, str]) -> None:
    """In the action, the cache stays in the workspace, RUNNER_TEMP or the container's home."""
    real = path.resolve()
    allowed = [workspace] + [
        Path(env[name]).resolve() for name in ("RUNNER_TEMP", "HOME") if env.get(name)
    ]
    if not any(real.is_relative_to(root) for root in allowed):
        raise InputError(
            "cache-dir",
            f"`{path}` lies outside the workspace, RUNNER_TEMP and HOME",
            hint="Use a folder inside the workspace or under `${{ runner.temp }}`, "
            "or leave it empty for the default",
        )


def _check_writable(name: str, path: Path) -> None:
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise InputError(
            name, f"`{probe}` exists and is not a folder", hint="Choose another output folder"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(
            name,
            f"`{path}` cannot be written (no write permission on `{probe}`)",
            hint="Choose a folder you can write to",
        )


class _PathResolver:
    def __init__(self, base: Path, workspace: Path | None) -> None:
        self.base = base
        self.workspace = workspace

    def resolve(self, name: str, text: str) -> Path:
        path = (self.base / Path(text).expanduser()).resolve()
        if self.workspace is not None and not path.is_relative_to(self.workspace):
            raise InputError(
                name,
                f"`{text}` lies outside the workspace `{self.workspace}`",
                hint="Use a path inside the repository checkout",
            )
        return path

    def file(self, name: str, text: str) -> Path | None:
        if not text:
            return None
        path = self.resolve(name, text)
        if not path.is_file():
            raise InputError(
                name,
                f"`{text}` is not a file (looked at `{path}`)",
                hint="Check the path, relative to the working folder",
            )
        return path

    def directory(self, name: str, text: str) -> Path | None:
        if not text:
            return None
        path = self.resolve(name, text)
        if not path.is_dir():
            raise InputError(
                name,
                f"`{text}` is not a folder (looked at `{path}`)",
                hint="Check the path, relative to the working folder",
            )
        return path
