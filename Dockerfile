# The dispatch service (default target) and, as target "loadtest", the same code with locust.
#   docker build -t geo-dispatch .                      # the service
#   docker build -t geo-dispatch-load --target loadtest .
# The project's hot loops are C (setup.py): built into a wheel here, so the images below
# carry no compiler and no sources to shadow the installed package.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY geoindex ./geoindex
COPY dispatch ./dispatch
COPY loadtest ./loadtest
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY --from=build /wheels /wheels
# uvloop, hiredis and h3 come as wheels.
RUN pip install /wheels/*.whl \
    && python -c "import uvloop, hiredis, h3, dispatch, geoindex" \
    && useradd --system --uid 10001 --no-create-home --home-dir /app app

FROM base AS loadtest
RUN pip install --find-links /wheels 'geo-dispatch[dev]'
USER app
ENTRYPOINT ["sh", "-c", "exec locust -f \"$(python -c 'import loadtest, os; print(os.path.dirname(loadtest.__file__))')/locustfile.py\" \"$@\"", "locust"]

FROM base AS service
USER app
# Listens on 0.0.0.0, so DISPATCH_JWT_SECRET must be given (docker run -e ...): with the
# built-in development secret `dispatch serve` refuses to start on a non-loopback address.
ENV DISPATCH_HOST=0.0.0.0 \
    DISPATCH_PORT=8080
EXPOSE 8080
# /healthz never touches Redis: it says the process is alive, not that Redis is reachable.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('DISPATCH_PORT', '8080'), timeout=2)"]
# SIGTERM is a graceful stop (close WebSockets with 1001, finish requests in flight).
STOPSIGNAL SIGTERM
CMD ["python", "-m", "dispatch", "serve"]
