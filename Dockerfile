# source-pendo: the connector as an Airbyte source image.
#
# Base: the official Airbyte Python connector base 4.0.2 (Python 3.11, Debian bookworm), pinned by digest; the
# same reference is metadata.yaml's connectorBuildOptions.baseImage. The digest was taken from public Airbyte
# connector sources (no registry is reachable where this file was written): verify it with
# `docker buildx imagetools inspect docker.io/airbyte/python-connector-base:4.0.2` before publishing.
# Override for offline builds: `docker build --build-arg BASE_IMAGE=local/python-connector-base:3.11 .`
ARG BASE_IMAGE=docker.io/airbyte/python-connector-base:4.0.2@sha256:9fdb1888c4264cf6fee473649ecb593f56f58e5d0096a87ee0b231777e2e3e73

# ---- builder: the locked dependencies (poetry.lock) in a fresh venv, then the connector's wheel ----------------
FROM ${BASE_IMAGE} AS builder
# The Poetry of scripts/setup_venv.sh (unit_tests/test_metadata.py keeps the two equal), in its own venv.
ARG POETRY_VERSION=1.8.5
# Poetry's HTTP client trusts the system's CA bundle, as Debian's pip does (a proxy's CA added there is trusted).
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 POETRY_VIRTUALENVS_CREATE=false \
    POETRY_NO_INTERACTION=1 PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
WORKDIR /build
RUN python -m venv /opt/poetry && /opt/poetry/bin/pip install --quiet "poetry==${POETRY_VERSION}"
COPY pyproject.toml poetry.lock README.md ./
COPY source_pendo ./source_pendo
# Dependencies at the versions of poetry.lock (the ones the tests ran with), not whatever is newest today.
RUN python -m venv --without-pip /airbyte/venv \
 && VIRTUAL_ENV=/airbyte/venv /opt/poetry/bin/poetry install --only main --no-root --sync \
 && /opt/poetry/bin/poetry build --format wheel \
 && python -m pip --python /airbyte/venv/bin/python install --no-deps /build/dist/source_pendo-*.whl \
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
LABEL io.airbyte.name="airbyte/source-pendo" io.airbyte.version="1.0.0"
WORKDIR /airbyte
USER airbyte
ENTRYPOINT ["/airbyte/venv/bin/source-pendo"]
