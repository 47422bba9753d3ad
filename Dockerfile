# syntax=docker/dockerfile:1
# One image for the API (the default command, `python -m service`) and the training job
# (`train-and-publish`, or any `python -m training ...` / `python -m service.publish ...`).
#
#   docker build -t mvcrec:cuda .                          # CUDA 12.8 (default)
#   docker build -t mvcrec:cpu --build-arg VARIANT=cpu .   # CPU only, no CUDA libraries
#
# Both variants are Ubuntu 24.04 with its Python 3.12, so the virtual environment built in the
# `build` stage runs unchanged in the final stage. The CUDA variant starts from NVIDIA's `base`
# flavour (CUDA runtime and the container-toolkit settings): the CUDA build of torch brings its own
# cuBLAS/cuDNN wheels, so the larger `runtime`/`cudnn` flavours would only duplicate them.
ARG VARIANT=cuda

FROM nvidia/cuda:12.8.1-base-ubuntu24.04 AS os-cuda

FROM ubuntu:24.04 AS os-cpu

# os-cuda or os-cpu, the stages above (hadolint cannot see through the variable)
# hadolint ignore=DL3006
FROM os-${VARIANT} AS python
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3.12=3.12.3-1ubuntu0.* python3.12-venv=3.12.3-1ubuntu0.* \
    && rm -rf /var/lib/apt/lists/*

FROM python AS build
ARG VARIANT
ARG TORCH_VERSION=2.13.0
ARG TORCH_CUDA=cu128
ARG FAISS_GPU_VERSION=1.14.1.post1
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3.12 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# torch first, from PyTorch's index for the variant, so no other build is ever pulled in
RUN if [ "$VARIANT" = cuda ]; then index="$TORCH_CUDA"; else index=cpu; fi \
    && pip install "torch==${TORCH_VERSION}" --index-url "https://download.pytorch.org/whl/${index}"
COPY deploy/constraints.txt deploy/constraints.txt
COPY pyproject.toml README.md ./
COPY model model
COPY training training
COPY service service
RUN pip install --constraint deploy/constraints.txt . \
    && if [ "$VARIANT" = cuda ]; then \
        pip uninstall -y faiss-cpu && pip install "faiss-gpu-cu12==${FAISS_GPU_VERSION}"; \
    fi

FROM python AS final
COPY --from=build /opt/venv /opt/venv
COPY deploy/train-and-publish.sh /usr/local/bin/train-and-publish
RUN groupadd --system --gid 10001 mvcrec \
    && useradd --system --uid 10001 --gid mvcrec --home-dir /var/lib/mvcrec --no-create-home mvcrec \
    && install -d -o mvcrec -g mvcrec /var/lib/mvcrec /var/lib/mvcrec/artifacts \
        /var/lib/mvcrec/data /var/lib/mvcrec/runs
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    ARTIFACT_DIR=/var/lib/mvcrec/artifacts \
    DATA=/var/lib/mvcrec/data/events.csv
WORKDIR /var/lib/mvcrec
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/healthz', timeout=2)"]
CMD ["python", "-m", "service"]
