# Switchboard: the two commands are `make dev` and `make test`. Both install what is missing
# (wasm target, worker-build, wasm-bindgen CLI, wrangler) and skip what is already there at the
# right version.

SHELL := /bin/bash
PORT ?= 8787
WORKER_BUILD_VERSION := 0.8.7
WASM_BINDGEN_VERSION := 0.2.130
CARGO_BIN := $(HOME)/.cargo/bin
# The side-by-side kit (load generator + NestJS peer), kept beside the project, not in it.
SHARED_BENCH ?= ../shared/bench

export PATH := $(CARGO_BIN):$(CURDIR)/node_modules/.bin:$(PATH)
# worker-build would download these from hosts these machines cannot reach.
export WASM_BINDGEN_BIN := $(CARGO_BIN)/wasm-bindgen
export WRANGLER_SEND_METRICS := false
export CLOUDFLARE_CF_FETCH_ENABLED := false

.PHONY: dev test tools browser venv client build lint unit dry-run e2e nest-example bench bench-socketio bench-nest bench-broadcast bench-notify bench-rooms profile reset

## dev: build and serve the gateway on 127.0.0.1:$(PORT) with a local D1 and .dev.vars.
dev: tools .dev.vars
	CI=true wrangler d1 migrations apply DB --local
	@echo "Local state (D1 and every Durable Object's SQLite) is in .wrangler/state; 'make reset' deletes it."
	@echo "The local runtime opens one SQLite database per user or room with open sockets: a few thousand at once is its limit here (SQLITE_NOMEM / too many open files); measure load with 'make bench'."
	wrangler dev --ip 127.0.0.1 --port $(PORT) --show-interactive-dev-session=false

## reset: delete the local D1 and Durable Object state that `make dev` keeps (stop make dev first).
reset:
	rm -rf .wrangler/state

## test: formatting, lints (host and wasm32), unit tests, a deployable bundle, end-to-end tests.
test: tools browser lint unit dry-run e2e

tools: node_modules/.installed
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@[ "$$(worker-build --version 2>/dev/null)" = "$(WORKER_BUILD_VERSION)" ] || cargo install worker-build --version $(WORKER_BUILD_VERSION) --force
	@[ "$$(wasm-bindgen --version 2>/dev/null)" = "wasm-bindgen $(WASM_BINDGEN_VERSION)" ] || cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --force

## browser: Debian's Chromium for the browser tests (driven by playwright-core; needs root and
## Debian's package archive, which these machines reach).
browser:
	@command -v chromium >/dev/null || { echo "Installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

## venv: .venv with the pinned python-socketio client of the end-to-end tests
## (tests/python/requirements.txt); made again only when that file changes.
venv: .venv/.installed

.venv/.installed: tests/python/requirements.txt
	@[ -x .venv/bin/python ] || python3 -m venv .venv
	.venv/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
	@touch $@

.dev.vars:
	cp .dev.vars.example .dev.vars

## client: the SDK (client/src, TypeScript) compiled to client/dist, with the demo page and the
## operator page beside it; the gateway serves them in development (/client.js, /demo/, /ops/).
client: node_modules/.installed
	tsc -p client
	rm -rf client/dist/demo && cp -r client/demo client/dist/demo
	rm -rf client/dist/ops && cp -r client/ops client/dist/ops

## build: the Worker bundle in build/ and the client (wrangler runs this before dev and deploy).
build: client
	worker-build --release

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --target wasm32-unknown-unknown --all-targets -- -D warnings

## unit: the Rust unit tests, and the npm packages' own (packages/*/test, node:test).
unit: nest-example
	cargo test
	node --test packages/emitter/test/
	cd packages/nestjs && node --test test/

dry-run:
	@out=$$(mktemp -d) && trap 'rm -rf "$$out"' EXIT && wrangler deploy --dry-run --outdir "$$out"

e2e: venv nest-example
	node tests/run.mjs

## nest-example: the NestJS example app (examples/nest-chat, NestJS from npm, pinned) and the
## adapter it runs on (packages/nestjs), built for the e2e tests and `npm start`.
nest-example: examples/nest-chat/node_modules/.installed
	cd examples/nest-chat && npm run build

examples/nest-chat/node_modules/.installed: examples/nest-chat/package-lock.json packages/nestjs/package-lock.json
	cd packages/nestjs && npm ci --no-audit --no-fund
	cd examples/nest-chat && npm ci --no-audit --no-fund
	@touch $@

## bench: the platform floor vs Switchboard (vs the NestJS peer with BENCH_PEER=1), each served
## production-like, 3 interleaved runs of every scenario; one table (docs/BENCHMARKS.md).
## BENCH_ARGS="--quick" for a smoke run, "--runs N", "--targets switchboard".
bench: tools build
	SHARED_BENCH=$(SHARED_BENCH) bench/run.sh $(BENCH_ARGS)

## bench-socketio: the Socket.IO facade beside the raw protocol (issue #12): connect, push, idle,
## room join and fan-out, raw and socket.io interleaved on fresh servers; SIO_BENCH_ARGS="--runs 5"
## (`--protos raw,sio,sio-emit --members 1000`: a backend's emit to a room beside a room message).
bench-socketio: tools build
	node bench/socketio.mjs $(SIO_BENCH_ARGS)

## bench-nest: a NestJS handler through @switchboard/nestjs beside the same app on socket.io's own
## server (the peer in SHARED_BENCH, built there with npm ci && npm run build); NEST_BENCH_ARGS.
bench-nest: tools build nest-example
	SHARED_BENCH=$(SHARED_BENCH) node bench/nest.mjs $(NEST_BENCH_ARGS)

## bench-broadcast: one broadcast reaching 3,000 online users (issue #13), median of three;
## BROADCAST_BENCH_ARGS="--users 1000 --runs 5".
bench-broadcast: tools build
	node bench/broadcast.mjs $(BROADCAST_BENCH_ARGS)

## bench-notify: what "deliver or notify" costs an offline user (issue #14): alarm wakes and Web
## Push POSTs per user with no subscription, one, a burst of 10 events, a device that acks, and a
## second notification, against a local push service; 200 users each, median of three;
## NOTIFY_BENCH_ARGS="--users 500 --offline closed".
bench-notify: tools build
	node bench/notify.mjs $(NOTIFY_BENCH_ARGS)

## bench-rooms: one large room's join phase and fan-out (issue #13): one object vs shards at 1,000
## members (5 msg/s), and 10,000 / 19,500 members over shards (1 msg/s); medians of three.
bench-rooms: tools build
	SHARED_BENCH=$(SHARED_BENCH) bench/rooms.sh --runs 3 --single "1000" --sharded "1000" --rate 5 --secs 20 --out bench/results/rooms-small
	SHARED_BENCH=$(SHARED_BENCH) bench/rooms.sh --runs 3 --single "" --sharded "10000 19500" --rate 1 --secs 20 --out bench/results/rooms-large
	node bench/rooms-report.mjs bench/results/rooms-small
	node bench/rooms-report.mjs bench/results/rooms-large

## profile: V8 CPU profiles of Switchboard under connect, push and fan-out (bench/profiles/).
profile: tools build
	SHARED_BENCH=$(SHARED_BENCH) bench/profiles.sh
