# syntax=docker/dockerfile:1
#
# realtime-bridge: docker build -t realtime-bridge .
#                  docker run --rm -p 8080:8080 -p 3000:3000 -e OPENAI_API_KEY realtime-bridge
# (without a key it serves the built-in local upstream). Settings are environment variables
# (README, "Configuration"); secrets are given at run time, never baked into the image.
# Operations, draining and proxies: docs/operations.md.

# The version the benchmarks and tests run on. Pin a digest (python:3.11-slim@sha256:…) for
# reproducible builds.
ARG PYTHON_VERSION=3.11

# Build stage: the package and its dependencies into a virtual environment that the runtime
# stage copies whole, so pip's build files never reach the final image.
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# EXTRAS=twilio checks Twilio's request signatures (TWILIO_AUTH_TOKEN) with Twilio's package.
ARG EXTRAS=""
RUN pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}"

FROM python:${PYTHON_VERSION}-slim
LABEL org.opencontainers.image.title="realtime-bridge" \
      org.opencontainers.image.description="A bridge between realtime voice clients and the OpenAI Realtime API"
# A fixed uid, so Kubernetes can check runAsNonRoot and volumes can be granted to it.
RUN groupadd --system --gid 10001 bridge \
    && useradd --system --uid 10001 --gid bridge --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin bridge
COPY --from=build /opt/venv /opt/venv
# HOST: a container is reached through its interface, not loopback. WORKERS=auto starts one
# worker per CPU the process may run on (under a CPU quota, set WORKERS to the quota instead).
# PYTHONDONTWRITEBYTECODE: the root filesystem may be read-only.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    WS_PORT=8080 \
    HTTP_PORT=3000 \
    WORKERS=auto \
    LOG_FORMAT=json \
    WEBRTC_UDP_PORTS=40000-40099
# An empty working directory: the bridge reads .env from it, and none is shipped.
WORKDIR /app
USER 10001:10001
# 8080: client WebSockets (/v1/realtime, /twilio). 3000: the HTTP API (/health, /metrics, …).
# 40000-40099/udp: WebRTC calls' media; publish them one to one (-p 40000-40099:40000-40099/udp)
# and set WEBRTC_PUBLIC_ADDRESS to the address browsers reach (docs/operations.md, "WebRTC").
EXPOSE 8080 3000 40000-40099/udp
# No curl in a slim image: Python asks /health, which answers 503 while draining. Any
# exception (refused, timeout, HTTP error) exits 1, which marks the container unhealthy.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % (os.environ.get('HTTP_PORT') or '3000'), timeout=3)"]
# SIGTERM starts the drain: new sessions are refused, live ones get SHUTDOWN_GRACE_S, then 1001.
STOPSIGNAL SIGTERM
CMD ["realtime-bridge"]
