# syntax=docker/dockerfile:1
#
# Node-RED with node-red-contrib-ai-dialer and the shipped default flow (flows/ai-dialer.json).
#
# Stage 1 builds this package from source and packs it (`npm pack`, exactly what npm would publish).
# Stage 2 installs that tarball beside a stock Node-RED 4.1 on Node 20 (Debian 12), adds espeak-ng
# (the offline TTS engine) and, if asked, the Piper CLI, and starts the package's embedded runtime
# (the same as `npm start`) as the unprivileged `node` user (uid/gid 1000, shared with Asterisk's image).
#
#   docker build -t ai-dialer/node-red .
#   docker build --build-arg PIPER_RELEASE=2023.11.14-2 -t ai-dialer/node-red .
#
# Configuration comes only from the environment (docker-compose.yml passes .env); no secret is baked in.
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
# prepack runs the build (TypeScript -> dist/, node editors, locales, icons)
RUN mkdir -p /pkg && npm pack --pack-destination /pkg && ls -l /pkg

FROM ${NODE_IMAGE}
ARG NODE_RED_VERSION=4.1.8
# Optional: a Piper release tag from github.com/rhasspy/piper (e.g. 2023.11.14-2). Empty: no Piper.
# Voice models are not downloaded here: set PIPER_MODEL to a mounted one (docs/engines/piper.md; in
# docker-compose the piper service's voices are mounted at /piper-voices).
ARG PIPER_RELEASE=

ENV DEBIAN_FRONTEND=noninteractive
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends espeak-ng tini ca-certificates; \
    if [ -n "${PIPER_RELEASE}" ]; then \
      apt-get install -y --no-install-recommends curl; \
      case "$(dpkg --print-architecture)" in \
        amd64) arch=x86_64 ;; arm64) arch=aarch64 ;; armhf) arch=armv7l ;; \
        *) echo "no Piper build for $(dpkg --print-architecture)" >&2; exit 1 ;; \
      esac; \
      curl -fsSL "https://github.com/rhasspy/piper/releases/download/${PIPER_RELEASE}/piper_linux_${arch}.tar.gz" | tar -xz -C /opt; \
      ln -s /opt/piper/piper /usr/local/bin/piper; \
      mkdir -p /opt/piper/voices; \
      apt-get purge -y --auto-remove curl; \
    fi; \
    rm -rf /var/lib/apt/lists/*; \
    espeak-ng --version

WORKDIR /opt/ai-dialer
COPY --from=build /pkg/ /tmp/pkg/
RUN set -eux; \
    printf '{ "name": "ai-dialer-image", "private": true }\n' > package.json; \
    npm install --omit=dev --no-audit --no-fund "node-red@${NODE_RED_VERSION}" /tmp/pkg/node-red-contrib-ai-dialer-*.tgz; \
    rm -rf /tmp/pkg; \
    npm cache clean --force; \
    test -f node_modules/node-red-contrib-ai-dialer/flows/ai-dialer.json; \
    mkdir -p /data/audio /data/recordings; \
    chown -R node:node /data

COPY deploy/node-red/entrypoint.sh /usr/local/bin/ai-dialer-entrypoint
COPY deploy/node-red/healthcheck.js /opt/ai-dialer/healthcheck.js
RUN chmod 0755 /usr/local/bin/ai-dialer-entrypoint

ENV NODE_ENV=production \
    AI_DIALER_HOME=/opt/ai-dialer/node_modules/node-red-contrib-ai-dialer \
    PORT=1880 \
    HOST=0.0.0.0 \
    DATA_DIR=/data \
    AGI_HOST=0.0.0.0 \
    AGI_PORT=4573 \
    AUDIO_DIR=/data/audio \
    RECORDINGS_DIR=/data/recordings \
    TTS_ENGINE=espeak-ng \
    ESPEAK_BIN=espeak-ng

USER node
VOLUME ["/data"]
# 1880 editor, HTTP API and dashboard; 4573 FastAGI
EXPOSE 1880 4573

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["node", "/opt/ai-dialer/healthcheck.js"]

ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/ai-dialer-entrypoint"]
