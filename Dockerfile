# The Stevedore worker. Built from what the host prepared (scripts/stack.sh does it: `npm run build`
# and a production-only node_modules in .stevedore/image), because a build step may have no network.
# NODE_IMAGE defaults to the public image; scripts/seed-images.sh makes a local one of that name
# on machines that reach no registry.
ARG NODE_IMAGE=node:20-bookworm-slim
FROM ${NODE_IMAGE}

ENV NODE_ENV=production
WORKDIR /app
# Least often changed first, so a code change rebuilds only the last layer.
COPY .stevedore/image/node_modules /app/node_modules
COPY package.json /app/package.json
COPY dist /app/dist

# `node` (uid 1000, as in the public image). The engine socket is root:docker on the host, with a
# group id that differs per host: compose adds that group (group_add, computed by scripts/stack.sh).
USER node
# The bin's shebang sets the Node flags and MALLOC_MMAP_THRESHOLD_ a worker runs with (README, Speed).
ENTRYPOINT ["/app/dist/cli/main.js"]
CMD ["worker"]
