# Two commands set everything up: `make run` (one node) and `make test` (the suite).
# The venv's Python must be one every user can run: services and workloads run as workloads.user (nobody),
# who cannot reach an interpreter kept under /root (pyenv, say).
PYTHON ?= $(firstword $(wildcard /usr/bin/python3) python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= conf/config.yaml

.PHONY: venv system-deps container-engine build run test bench chaos clean dist bundle image image-cluster image-cluster-down

# Debian packages: curl for the tests' upload forms, chromium for the console's browser tests (Playwright
# drives Debian's build: it cannot download its own here), iproute2 and iptables for the test hosts
# (tools/testhosts.sh: network namespaces, partitions), rclone and s3fs (the S3 clients the gateway is tested
# with), debootstrap for the container image's base (make image), nginx for the gateway benchmark's
# baseline, wrk for the model service benchmarks' load (bench/http_load.py); for the stream tests, ffmpeg (their
# clips), GStreamer's RTSP server with its Python bindings (a real camera) and mosquitto (a real MQTT broker);
# gcc and make build libfaketime from Debian's source for the clock-step tests (tools/libfaketime.sh).
APT_INSTALL = apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	# onnx2tf imports tf-keras, whose own requirement (the full tensorflow, twice tensorflow-cpu's size) would
	# replace tensorflow-cpu's files: it runs on tensorflow-cpu, installed without its requirements.
	$(BIN)/pip install --quiet --no-deps tf-keras==2.21.0
	touch $@

venv: $(STAMP)

build: venv
	mkdir -p bin
	for script in cnet cnetd cnet-agent cnet-tap supervisorctl cnet-inference-yolo cnet-inference-opencv cnet-gateway-data; do ln -sf ../$(BIN)/$$script bin/$$script; done

run: build
	$(BIN)/cnetd -config $(CONFIG)

system-deps:
	@(command -v curl && command -v chromium && command -v ip && command -v iptables && command -v rclone && \
		command -v s3fs && command -v debootstrap && command -v ffmpeg && command -v mosquitto && command -v gcc && \
		command -v make && dpkg -s gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-bad python3-gi) >/dev/null 2>&1 || \
		($(APT_INSTALL) curl chromium iproute2 iptables rclone s3fs debootstrap ffmpeg mosquitto python3-gi \
			gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gcc make)

# A real container engine for the container tests: rootful Podman with its Docker-compatible API.
PODMAN_SOCKET ?= /run/podman/podman.sock
container-engine:
	bash tools/podman-setup.sh --service $(PODMAN_SOCKET) >/dev/null

test: venv system-deps container-engine
	CI=$${CI:-true} DOCKER_HOST=unix://$(PODMAN_SOCKET) $(BIN)/python -m pytest -q --durations=40 tests

bench: venv system-deps
	@(command -v nginx && command -v wrk) >/dev/null || ($(APT_INSTALL) nginx-light wrk)
	for script in ledger_bench submit_latency heartbeat_latency mesh_fanin predict_latency gateway_throughput metrics_overhead \
		partition_recovery cluster_faults tensorflow_predict node_stop idle_penalty agent_upgrade rollout autoscale image; do \
		$(BIN)/python bench/$$script.py || exit 1; done

# A chaos run (tools/chaos.py): four nodes on test hosts under load, random faults from SEED, invariants checked
# after each of ROUNDS rounds; its history in chaos-history.jsonl. Exits 1 on a violation.
SEED ?= 1
ROUNDS ?= 3
chaos: venv system-deps
	$(BIN)/python tools/chaos.py --seed $(SEED) --rounds $(ROUNDS)

# A wheel and an sdist of CNET (the version: cnetd/__init__.py), then the offline bundle for this platform:
# the wheel, a wheelhouse of its dependencies (made once, kept in ~/.cache/cnet), the systemd unit and
# install.sh. EXTRAS=tflite,torch adds optional runtimes to the bundle.
dist: venv
	$(BIN)/pip install --quiet build
	rm -rf dist/cnet-*.whl dist/cnet-*.tar.gz build
	$(BIN)/python -m build --no-isolation --sdist --wheel --outdir dist . >/dev/null
	@ls dist/cnet-*

bundle: dist
	$(BIN)/python tools/bundle.py --extras "$(EXTRAS)"

# CNET's node image (localhost/cnet:<version> and :latest), offline: a Debian base made by debootstrap (cached
# in ~/.cache/cnet), the bundle installed in it. Sets up Podman itself, as make test does.
image: bundle
	@command -v debootstrap >/dev/null || ($(APT_INSTALL) debootstrap)
	bash tools/podman-setup.sh >/dev/null
	$(BIN)/python tools/image.py

# The seed's four-node cluster as containers of that image (deploy/compose/cluster.yaml, podman-compose),
# published on 127.0.0.1:8080-8083; down removes its containers, network and volumes.
COMPOSE = $(BIN)/podman-compose -f deploy/compose/cluster.yaml -p cnet-cluster
image-cluster: image
	$(COMPOSE) up -d
image-cluster-down: venv
	$(COMPOSE) down -v

clean:
	rm -rf $(VENV) bin build dist *.egg-info
