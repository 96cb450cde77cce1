# syntax=docker/dockerfile:1
# The voice session server: Node 20 running the TypeScript sources through tsx (no build step for the
# server), the browser bundle built at image build time, Debian's libopus0 for the Opus codec and
# libpocketsphinx3 + pocketsphinx-en-us for the embedded agent's local speech recognition.
#
#   docker build -t voice-session-server .
#   docker run --rm -p 8080:8080 -p 40000-40199:40000-40199/udp \
#     -e RTC_PORT_RANGE=40000-40199 -e RTC_ANNOUNCED_ADDRESS=<host IP> voice-session-server
#
# Media is UDP: publish the RTC_PORT_RANGE 1:1 and announce the host's address, or run with
# --network host. See docs/operations.md.

FROM node:20-bookworm-slim AS build
# gcc: Silero's native kernel (scripts/build-native.sh), compiled here and copied with the app.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# patches/ is applied by patch-package in npm's postinstall.
COPY package.json package-lock.json .npmrc ./
COPY patches ./patches
RUN npm ci --no-audit --no-fund
COPY . .
RUN bash scripts/build-native.sh \
 && npm run build:client \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libopus0 libpocketsphinx3 pocketsphinx-en-us \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
WORKDIR /app
# Owned by root, so the server (running as the image's unprivileged "node" user) cannot change its code.
COPY --from=build /app /app
USER node
EXPOSE 8080/tcp
# The default RTC_PORT_RANGE; publish only the range you configure.
EXPOSE 40000-49999/udp
# main.ts drains on SIGTERM (DRAIN_TIMEOUT_MS) and exits 0.
STOPSIGNAL SIGTERM
CMD ["node", "--import", "tsx", "server/main.ts"]
