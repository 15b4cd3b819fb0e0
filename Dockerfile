# syntax=docker/dockerfile:1
# nexomon: slim, multi-stage, non-root. Build from the repository root:
#   docker build -t nexomon .
# The builder turns the project and its dependencies into wheels; the final
# stage installs only those wheels, so no compiler or build tool ships.

FROM python:3.11-slim AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NEXOMON_CONFIG=/etc/nexomon/nexomon.toml
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/nexorouter_monitor-*.whl \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/nexomon --create-home nexomon \
    && mkdir -p /etc/nexomon
WORKDIR /var/lib/nexomon
USER 10001:10001
EXPOSE 9464
# /healthz answers while the process is alive; slim has no curl, python does.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4)"]
ENTRYPOINT ["nexomon"]
CMD ["run", "-c", "/etc/nexomon/nexomon.toml"]
