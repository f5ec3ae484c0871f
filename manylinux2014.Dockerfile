# Generated from Dockerfile by scripts/variants.py: the manylinux2014 (glibc 2.17)
# image, built the same way on a CentOS 7 based manylinux userland.
# The portpy image: the `portpy` CLI and the GitHub action on a manylinux userland.
#
# manylinux is what keeps bundles portable: pip and uv running inside it pick only
# wheels whose manylinux tag fits the image's glibc. The default is pypa's multi-arch
# manylinux_2_28 (glibc 2.28, AlmaLinux 8), so the platform being built chooses
# between its quay.io/pypa/manylinux_2_28_x86_64 and _aarch64 images. For a glibc
# 2.17 baseline, build on the CentOS 7 based variant:
#   docker build --build-arg BASE_IMAGE=quay.io/pypa/manylinux2014 .
# (or one architecture's image, manylinux2014_x86_64 / manylinux2014_aarch64).
# Any base with a CPython at PYTHON_PREFIX works.
ARG BASE_IMAGE=quay.io/pypa/manylinux2014:2026.06.04-1
FROM ${BASE_IMAGE}

# The interpreter portpy runs on (not the one it bundles: that comes from pbs).
ARG PYTHON_PREFIX=/opt/python/cp312-cp312
ARG VERSION=dev

LABEL org.opencontainers.image.title="portable-python-action" \
      org.opencontainers.image.description="Relocatable Python bundles from python-build-standalone, checked for their glibc baseline" \
      org.opencontainers.image.source="https://github.com/portable-python/portable-python-action" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT"

# `portpy`, `uv` and `python` resolve to PYTHON_PREFIX in every shell and `docker run`.
ENV PATH="${PYTHON_PREFIX}/bin:${PATH}"

# Dependencies first, exactly as locked (requirements/lock), so they cache apart from the code.
# Behind a package index mirror: --build-arg PIP_INDEX_URL=… (unset, pip uses PyPI).
ARG PIP_INDEX_URL
COPY requirements/image.txt /tmp/portpy/requirements.txt
RUN python -m pip install --no-cache-dir --root-user-action=ignore --disable-pip-version-check \
        --require-hashes --only-binary=:all: -r /tmp/portpy/requirements.txt

# The package itself, built by the locked hatchling without reaching the index again.
COPY pyproject.toml README.md action.yml /tmp/portpy/src/
COPY portpy_action /tmp/portpy/src/portpy_action
RUN python -m pip install --no-cache-dir --root-user-action=ignore --disable-pip-version-check \
        --no-deps --no-build-isolation --no-index /tmp/portpy/src \
    && rm -rf /tmp/portpy

# Runs the action with no arguments; given a command (`portpy build …`), runs that instead.
COPY entrypoint /entrypoint
ENTRYPOINT ["/entrypoint"]
