"""The action: inputs → build (or check) → artifact, release assets, outputs, summary.

`python -m portpy_action` and the repository's `entrypoint` both land in `main`.
Secrets are masked before the first line is printed; every failure a user can
fix ends as one `::error::` annotation (naming the input when an input is at
fault), the error and its hint in the step summary, and its class's exit code
(errors.py).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path

from portpy_action.errors import InputError, PortpyError, disk_full, exit_code
from portpy_action.github.artifacts import RunContext, UploadedArtifact, upload_artifact
from portpy_action.github.release_assets import ReleaseAsset, ReleasesAPI, attach, release_holds
from portpy_action.github.summary import (
    BundleSummary,
    render_build,
    render_check,
    render_failure,
)
from portpy_action.github.workflow import (
    append_summary,
    file_from_env,
    hand_to_owner,
    input_variable,
    read_inputs,
    unexpected_inputs,
    write_outputs,
)
from portpy_action.log import Logger
from portpy_action.signals import EXIT_TERMINATED, Terminated, sigterm_raises
from portpy_action.spec import BuildSpec
from portpy_action.urls import url_secrets

# Variables whose values are credentials wherever they appear.
SECRET_VARIABLES = (
    input_variable("github-token"),
    "GITHUB_TOKEN",
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    input_variable("python-mirror-token"),
)


def main() -> int:
    log = Logger(sys.stdout)
    for variable in SECRET_VARIABLES:
        log.mask(os.environ.get(variable, "").strip())
    for secret in url_secrets(os.environ.get(input_variable("python-mirror"), "")):
        log.mask(secret)
    try:
        with sigterm_raises():
            run(os.environ, log)
    except Terminated:
        log.error("terminated (SIGTERM): the job was cancelled or timed out")
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        log.error("interrupted (SIGINT): the job was cancelled")
        return 130
    except Exception as exc:
        full = disk_full(exc)
        if full is not None:
            log.error(str(full))
            return _failed(full, full.headline, full.hint, log)
        if isinstance(exc, PortpyError):
            path = _annotation_path(exc.file, _workspace(os.environ))
            log.error(str(exc), file=path, line=exc.line)
            return _failed(exc, exc.headline, exc.hint, log)
        # A bug: still one annotation, and the traceback (masked) for the report.
        log.info("".join(traceback.format_exception(exc)).rstrip())
        log.error(f"internal error: {type(exc).__name__}: {exc}")
        return _failed(exc, f"internal error: {type(exc).__name__}: {exc}", "", log)
    return 0


def _failed(exc: BaseException, headline: str, hint: str, log: Logger) -> int:
    """The exit code for `exc`, once the failure is in the step summary too."""
    code = exit_code(exc)
    markdown = log.redact(render_failure(headline, hint, code))
    try:
        append_summary(markdown, file_from_env(os.environ, "GITHUB_STEP_SUMMARY"))
    except (PortpyError, OSError) as problem:
        log.warning(f"could not write the failure to the step summary: {problem}")
    return code


def run(env: Mapping[str, str], log: Logger) -> None:
    for variable in unexpected_inputs(env):
        log.warning(f"`{variable}` is set but names no input of this action; it is ignored")
    workspace = _workspace(env)
    spec = BuildSpec.from_inputs(read_inputs(), workspace=workspace, env=env)
    for secret in spec.runtime.secrets:
        log.mask(secret)

    if spec.mode == "check":
        outputs = check(spec, env, log)
        summary = render_check(outputs)
    else:
        outputs, bundle = build_and_publish(spec, env, workspace, log)
        summary = render_build(bundle)
    write_outputs(outputs, file_from_env(env, "GITHUB_OUTPUT"))
    append_summary(summary, file_from_env(env, "GITHUB_STEP_SUMMARY"))
    for name, value in outputs.items():
        log.info(f"{name}={value}")


# ----------------------------------------------------------------------------
# mode: check


def check(spec: BuildSpec, env: Mapping[str, str], log: Logger) -> dict[str, str]:
    """Resolve version and tag without downloading; is the archive still missing?"""
    from portpy_action.runtime import resolve_release

    release = resolve_release(spec.runtime, log=log)
    archive_name = spec.archive_name(release.version, release.target)
    needs_build = True
    if spec.attach_to_release:
        with _releases_api(spec, env, log) as api:
            needs_build = not release_holds(spec.attach_to_release, archive_name, api=api)
    return {
        "python-version": release.version,
        "python-build-tag": release.tag,
        "target": release.target,
        "archive-name": archive_name,
        "needs-build": "true" if needs_build else "false",
    }


# ----------------------------------------------------------------------------
# mode: build


def build_and_publish(
    spec: BuildSpec, env: Mapping[str, str], workspace: Path, log: Logger
) -> tuple[dict[str, str], BundleSummary]:
    from portpy_action.build import build
    from portpy_action.bundle.install import check_requirements

    # Check what publishing needs before spending minutes on the build.
    if spec.attach_to_release:
        _repository(env)
        if not spec.github_token:
            raise InputError(
                "github-token",
                "is empty, but attach-to-release needs it",
                hint="Keep the default `${{ github.token }}` and grant `permissions: contents: write`",
            )
    if spec.requirements is not None:
        # Here the requirements file is the repository's: it may not pull in the runner's files.
        check_requirements(spec.requirements, inside=workspace)
    try:
        result = build(spec, log=log)
        artifact = _upload_artifact(spec, result.archive, env, log)
        assets = _attach_to_release(
            spec, [result.archive, result.sha256_file, result.sbom_path], env, log
        )
    finally:
        hand_to_owner([spec.output_dir, spec.runtime.cache_dir], workspace)

    release_asset_url = next((a.url for a in assets if a.name == result.archive.name), "")
    outputs = result.outputs() | {
        "archive-path": _in_workspace(result.archive, workspace),
        "manifest-path": _in_workspace(result.manifest_path, workspace),
        "sbom-path": _in_workspace(result.sbom_path, workspace),
        "artifact-id": str(artifact.id) if artifact else "",
        "artifact-url": artifact.url if artifact else "",
        "release-asset-url": release_asset_url,
    }
    bundle = BundleSummary(
        archive_name=outputs["archive-name"],
        python_version=outputs["python-version"],
        build_tag=outputs["python-build-tag"],
        target=outputs["target"],
        size=result.size,
        sha256=outputs["archive-sha256"],
        glibc_baseline=outputs["glibc-baseline"],
        external_libs=result.external_libs,
        distributions=tuple((dist.name, dist.version) for dist in result.distributions),
        timings=dict(result.timings),
        artifact_url=outputs["artifact-url"],
        release_asset_url=release_asset_url,
    )
    return outputs, bundle


def _upload_artifact(
    spec: BuildSpec, archive: Path, env: Mapping[str, str], log: Logger
) -> UploadedArtifact | None:
    if not spec.upload_artifact:
        return None
    context = RunContext.from_env(env)
    if context is None:
        log.notice(
            "No ACTIONS_RUNTIME_TOKEN or ACTIONS_RESULTS_URL: not a GitHub Actions job, so no workflow artifact is uploaded"
        )
        return None
    with log.stage("artifact", "Uploading the workflow artifact"):
        return upload_artifact(
            archive,
            name=spec.artifact_name or archive.name,
            context=context,
            retention_days=spec.retention_days,
            log=log,
        )


def _attach_to_release(
    spec: BuildSpec, files: list[Path], env: Mapping[str, str], log: Logger
) -> list[ReleaseAsset]:
    if not spec.attach_to_release:
        return []
    with (
        log.stage("release", f"Attaching to the release {spec.attach_to_release}"),
        _releases_api(spec, env, log) as api,
    ):
        return attach(
            files,
            tag=spec.attach_to_release,
            api=api,
            log=log,
            commit=env.get("GITHUB_SHA") or None,
        )


def _releases_api(spec: BuildSpec, env: Mapping[str, str], log: Logger) -> ReleasesAPI:
    return ReleasesAPI(spec.runtime.api_url, _repository(env), spec.github_token, log=log)


def _repository(env: Mapping[str, str]) -> str:
    repository = env.get("GITHUB_REPOSITORY", "")
    if "/" not in repository:
        raise InputError(
            "attach-to-release",
            "needs GITHUB_REPOSITORY (owner/name) to know which repository's release to use",
            hint="Run it in a GitHub Actions job, or set GITHUB_REPOSITORY",
        )
    return repository


def _workspace(env: Mapping[str, str]) -> Path:
    return Path(env.get("GITHUB_WORKSPACE") or Path.cwd()).resolve()


def _annotation_path(file: str | None, workspace: Path) -> str | None:
    """GitHub places annotations by repository-relative path; the container's path means nothing."""
    if file is None:
        return None
    return _in_workspace(Path(file), workspace)


def _in_workspace(path: Path, workspace: Path) -> str:
    """Workspace-relative, as later steps (on the host, outside the container) need it."""
    path = path.resolve()
    return str(path.relative_to(workspace)) if path.is_relative_to(workspace) else str(path)
