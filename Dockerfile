# guardproxy: the proxy with the shipped policy. Build: docker build -t guardproxy .
# Run:   docker run -p 8080:8080 -e OPENAI_API_KEY=sk-... guardproxy
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY guardproxy ./guardproxy
# Optional extras, e.g. --build-arg EXTRAS=postgres,redis for replicas (docker-compose.yml sets it).
ARG EXTRAS=""
RUN if [ -n "$EXTRAS" ]; then pip install ".[$EXTRAS]"; else pip install .; fi
COPY policy.yaml ./policy.yaml
COPY deploy ./deploy
# The shipped detector models (int8 ONNX classifier, spaCy NER); a non-editable install finds them here.
COPY models ./models
ENV GUARDPROXY_MODELS_DIR=/app/models

RUN useradd --system --uid 10001 guardproxy && mkdir -p /data /keys && chown guardproxy /data /keys
USER guardproxy
# The audit database lives on a volume so records survive the container.
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=2s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz')"
# SIGTERM (docker stop) drains in-flight requests and flushes the audit queue before exit.
STOPSIGNAL SIGTERM
CMD ["guardproxy", "serve", "--policy", "/app/policy.yaml", "--host", "0.0.0.0", "--port", "8080"]
