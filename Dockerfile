# syntax=docker/dockerfile:1
# nexomon: slim, multi-stage, non-root. Build from the repository root:
#   docker build -t nexomon .
# The builder turns the project and its dependencies into wheels; the final
# stage installs only those wheels, so no compiler or build tool ships.
#
# Layout (tests/deploy/test_container_layout.py reproduces it without Docker):
#   /etc/nexomon/nexomon.toml  the config: mount it read-only; the folder is root's
#   /var/lib/nexomon           the data (a VOLUME owned by uid 10001): a relative
#                              SQLite path and the spool resolve here through
#                              NEXOMON_DATA_DIR, not next to the read-only config

FROM python:3.11-slim AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NEXOMON_CONFIG=/etc/nexomon/nexomon.toml \
    NEXOMON_DATA_DIR=/var/lib/nexomon
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/nexomon-*.whl \
    && groupadd --system --gid 10001 nexomon \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /var/lib/nexomon --shell /usr/sbin/nologin nexomon \
    && install -d -o root -g root -m 0755 /etc/nexomon \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/nexomon
# Declared after the folder is made and chowned, so a new volume starts with
# its owner and mode.
VOLUME ["/var/lib/nexomon"]
WORKDIR /var/lib/nexomon
USER 10001:10001
EXPOSE 9464
# `nexomon health` reads the config and asks /healthz at its `listen` address
# (0.0.0.0 and :: on loopback): exit 0 when it answers ok, 1 otherwise.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["nexomon", "health"]
ENTRYPOINT ["nexomon"]
CMD ["run", "-c", "/etc/nexomon/nexomon.toml"]
