# syntax=docker/dockerfile:1
# One image for every mailgate service; the command selects it:
#   docker run IMAGE ingress-smtp --config /etc/mailgate/mailgate.yaml
#   (subcommands: ingress-smtp, dnsbl-check, virus-scan, attachment-policy, spam-check, delivery, admin, broker,
#   config check, dev; the services are those of packages/contracts/src/services.ts)
# Node 20 (the version CI and the dev machines run; engines >=20.18.1) on Debian slim (glibc: no musl surprises), built in one stage, shipped with production deps only.
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

# ---- build: install everything, compile TypeScript (tsc -b → each workspace's dist/), prune dev deps ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV CI=true NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
COPY . .
RUN --mount=type=cache,target=/root/.npm npm ci
RUN npm run build
RUN npm prune --omit=dev \
 # Runtime needs only dist/ and package.json of each workspace (the mailgate-src condition is for tests).
 && find packages services -mindepth 2 -maxdepth 2 \
      \( -name src -o -name test -o -name bench -o -name 'tsconfig*.json' -o -name '*.tsbuildinfo' \) \
      -exec rm -rf {} + \
 && rm -rf deploy helm docs test scripts tsconfig*.json

# ---- runtime: non-root, no build tools, no npm cache ----
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    MAILGATE_CONFIG=/etc/mailgate/mailgate.yaml
WORKDIR /app
RUN groupadd --system --gid 10001 mailgate \
 && useradd --system --uid 10001 --gid mailgate --home-dir /app --no-create-home --shell /usr/sbin/nologin mailgate \
 && mkdir -p /etc/mailgate /var/lib/mailgate && chown mailgate:mailgate /var/lib/mailgate \
 # npm and corepack are not needed at run time: less to patch, less to exploit.
 && rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack
# Owned by root and read-only for the service user: the code cannot be modified by the process running it.
COPY --from=build /app /app
USER 10001:10001
# SMTP (unprivileged; Kubernetes/compose map 25 and 587), then each service's http port (/healthz /readyz /metrics;
# the SERVICES table of packages/contracts/src/services.ts, checked by deploy/k8s-validate/test/dockerfile.test.mjs).
EXPOSE 2525 2587 9101 9102 9103 9104 9105 9106 9107
# The http port differs per service, so the probe lives in compose/Kubernetes (/readyz); Node's fetch needs no curl:
#   node -e "fetch('http://127.0.0.1:9101/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# Node runs as PID 1 and handles SIGTERM itself (readiness off → drain → flush → exit); use `init: true` in compose.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/packages/cli/bin/mailgate.js"]
CMD ["help"]
