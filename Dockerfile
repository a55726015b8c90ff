# syntax=docker/dockerfile:1
# One image runs every NodeLab component: `nodelab node`, `nodelab load` and `nodelab operator`
# (the Deployment, the load Job and the operator choose by their arguments).
#   docker build -t nodelab:dev .        (make kind-up does this, then `kind load docker-image`)
FROM python:3.11-slim

# Pods run with a read-only root filesystem: /tmp (an emptyDir) is their only writable path.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib

# A fixed numeric uid: Kubernetes can only verify runAsNonRoot against a numeric USER.
RUN groupadd --gid 10001 nodelab \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin nodelab

WORKDIR /src

# Dependencies first, from pyproject.toml alone: a source change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# Then the project. operator/nodelab/model/crd.yaml is a symlink to manifests/crd/nodelab.yaml,
# so the CRD must be in the build context too.
COPY README.md ./
COPY manifests/crd ./manifests/crd
COPY node_service ./node_service
COPY loadgen ./loadgen
COPY operator ./operator
RUN pip install --no-cache-dir . \
 && cd / && rm -rf /src \
 && nodelab --help > /dev/null

WORKDIR /
USER 10001:10001
# The node's port (the operator's Services point at it) and kopf's liveness endpoint.
EXPOSE 8080 8081
ENTRYPOINT ["nodelab"]
CMD ["--help"]
