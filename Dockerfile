# One image for every onair service; docker-compose picks the entry point per service.
FROM node:20-bookworm-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY tsconfig.json ./
COPY bin ./bin
COPY common ./common
COPY ingest ./ingest
COPY web ./web
COPY proxy ./proxy
COPY cli ./cli
COPY monitoring ./monitoring

# Named volumes take the ownership of these folders on first mount (docker-compose mounts
# media, data, spool (web/proxy: access records spilled while fluentd is away) and monitoring).
RUN mkdir -p /var/lib/onair/media /var/lib/onair/data /var/lib/onair/spool /var/lib/onair/monitoring \
 && chown -R node:node /var/lib/onair
ENV MEDIA_DIR=/var/lib/onair/media \
    DATA_DIR=/var/lib/onair/data \
    NODE_ENV=production
USER node

# tini forwards SIGTERM to node, which drains and exits (ffmpeg children are ended by ingest).
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "bin/onair.js", "help"]
