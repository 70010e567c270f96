# source-pendo: the connector as an Airbyte source image.
#
# Base: the official Airbyte Python connector base 4.0.2 (Python 3.11, Debian bookworm), pinned by digest; the
# same reference is metadata.yaml's connectorBuildOptions.baseImage. The digest was taken from public Airbyte
# connector sources (no registry is reachable where this file was written): verify it with
# `docker buildx imagetools inspect docker.io/airbyte/python-connector-base:4.0.2` before publishing.
# Override for offline builds: `docker build --build-arg BASE_IMAGE=local/python-connector-base:3.11 .`
ARG BASE_IMAGE=docker.io/airbyte/python-connector-base:4.0.2@sha256:9fdb1888c4264cf6fee473649ecb593f56f58e5d0096a87ee0b231777e2e3e73

# ---- builder: a wheel of the connector, installed with its dependencies into a fresh venv ----------------
FROM ${BASE_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /build
COPY pyproject.toml README.md constraints.txt ./
COPY source_pendo ./source_pendo
# Dependencies at the versions of constraints.txt (the ones the tests ran with), not whatever is newest today.
RUN python -m venv --without-pip /airbyte/venv \
 && python -m pip wheel --no-deps --wheel-dir /build/dist . \
 && python -m pip --python /airbyte/venv/bin/python install -c constraints.txt /build/dist/source_pendo-*.whl \
 && find /airbyte/venv -name '__pycache__' -type d -prune -exec rm -rf {} + \
 && /airbyte/venv/bin/python -m compileall -q /airbyte/venv/lib >/dev/null \
 && /airbyte/venv/bin/source-pendo spec >/dev/null

# ---- runtime: the base plus the venv, as a non-root user ------------------------------------------------
FROM ${BASE_IMAGE}
# The official base ships user `airbyte` (uid 1000); create it where a base lacks it.
RUN (id -u airbyte >/dev/null 2>&1 || useradd --uid 1000 --create-home --shell /usr/sbin/nologin airbyte) \
 && mkdir -p /airbyte && chown airbyte /airbyte
COPY --from=builder /airbyte/venv /airbyte/venv
ENV PATH="/airbyte/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    AIRBYTE_ENTRYPOINT="/airbyte/venv/bin/source-pendo"
LABEL io.airbyte.name="airbyte/source-pendo" io.airbyte.version="0.3.1"
WORKDIR /airbyte
USER airbyte
ENTRYPOINT ["/airbyte/venv/bin/source-pendo"]
