# The SafeWatch service image: one image, one process per container (ingest, alerts, api, simulate …).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY safewatch ./safewatch
COPY ingest ./ingest
COPY alerts ./alerts
COPY api ./api
COPY simulators ./simulators
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# openssl: broker-init makes a trial TLS certificate for the broker when the operator gives none.
RUN apt-get update && apt-get install -y --no-install-recommends openssl && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 safewatch
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/* && rm -rf /wheels
COPY deploy /app/deploy
WORKDIR /app
USER safewatch
ENV SAFEWATCH_LOG_JSON=true \
    SAFEWATCH_API__HOST=0.0.0.0
ENTRYPOINT ["safewatch"]
CMD ["api"]
