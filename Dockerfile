# FinPulse image: one image for the services, the workers and the one-shot jobs.
# CPU image:  docker build -t finpulse .
#   (pass --build-arg TORCH_INDEX_URL=<the PyTorch CPU wheel index> for a smaller CPU-only torch)
# GPU image:  docker build -t finpulse:gpu --build-arg EXTRAS=gpu .
#   (the default torch==2.13.0 Linux wheel is a CUDA build; or pass TORCH_INDEX_URL of a CUDA index)
FROM python:3.11-slim

ARG TORCH_INDEX_URL=""
ARG EXTRAS=""

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    FINPULSE_HOME=/var/lib/finpulse \
    FINPULSE_HOST=0.0.0.0

# libgomp: OpenMP runtime of torch, faiss and implicit on slim images.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# torch first, pinned: the layer everything else builds on (and the slowest to download).
RUN if [ -n "$TORCH_INDEX_URL" ]; then pip install "torch==2.13.0" --index-url "$TORCH_INDEX_URL"; \
    else pip install "torch==2.13.0"; fi

COPY pyproject.toml README.md ./
COPY shared ./shared
COPY training ./training
COPY data_connectors ./data_connectors
COPY services ./services
COPY data/samples ./data/samples
RUN pip install -e ".${EXTRAS:+[$EXTRAS]}" \
 && useradd --create-home --uid 10001 finpulse \
 && mkdir -p "$FINPULSE_HOME" && chown finpulse "$FINPULSE_HOME"

USER finpulse
VOLUME ["/var/lib/finpulse"]
EXPOSE 8101 8102 8103
# Editable install: the code stays in /app with data/samples beside it.
# The whole suite in one container (its own Redis is not in this image: set REDIS_URL).
CMD ["finpulse", "up"]
