# surgeon: build, test, benchmark, fuzz.
GO        ?= go
BIN       := bin
PLUGINDIR := $(BIN)/plugins
# A count (500000x) rather than a duration: Go 1.26 ends duration-limited
# fuzzing with a spurious "context deadline exceeded" (golang/go#75804).
FUZZTIME  ?= 500000x

.PHONY: all build plugins test bench bench-decode bench-scale interop fuzz lint generate clean demo static image image-test cluster-test

all: build

build:
	$(GO) build -o $(BIN)/surgeon ./cmd/surgeon
	@mkdir -p $(PLUGINDIR)
	@for d in $$(ls -d plugins/cmd/*/ plugins/examples/*/ 2>/dev/null); do \
		n=$$(basename $$d); \
		echo "$(GO) build -o $(PLUGINDIR)/surgeon-plugin-$$n ./$$d"; \
		$(GO) build -o $(PLUGINDIR)/surgeon-plugin-$$n ./$$d || exit 1; \
	done
	$(BIN)/surgeon plugins lock

test:
	$(GO) vet ./...
	SURGEON_POOL_POISON=1 $(GO) test -count=1 ./...

# llama.cpp as a peer (node-llama-cpp 3.21.1's prebuilt CPU binaries,
# installed into tools/llamacpp/node_modules from its lock file): the GGUF
# interop tests, which make test also runs and which skip, saying why,
# without node.
interop:
	@if command -v npm >/dev/null 2>&1; then \
		(cd tools/llamacpp && npm ci --no-audit --no-fund --loglevel=error) || \
			echo "interop: npm ci in tools/llamacpp failed; the llama.cpp tests will skip"; \
	else echo "interop: npm is not installed; the llama.cpp tests will skip"; fi
	$(GO) test -count=1 -run 'LlamaCpp' ./...

# Static binaries (no cgo) for the container image: bin/static/surgeon
# and bin/static/plugins/, which FROM scratch can run.
static:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/static/surgeon ./cmd/surgeon
	@mkdir -p $(BIN)/static/plugins
	@for d in $$(ls -d plugins/cmd/*/ plugins/examples/*/ 2>/dev/null); do \
		n=$$(basename $$d); \
		echo "CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/static/plugins/surgeon-plugin-$$n ./$$d"; \
		CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/static/plugins/surgeon-plugin-$$n ./$$d || exit 1; \
	done

# The container image (Containerfile, FROM scratch) from the static
# binaries, built with buildah without a daemon (tools/image/build.sh).
IMAGE ?= surgeon:latest
image: static
	tools/image/build.sh $(IMAGE)

# Builds the image, then runs plugins verify and a tiny apply inside it
# with buildah (tools/image/test.sh; about a minute).
image-test:
	tools/image/test.sh

# A real one-node Slurm on localhost runs an emitted sweep, a killed task
# and its resubmission (tools/cluster/test.sh; a few minutes). Bounded:
# the script's own deadline, then timeout.
cluster-test: build
	timeout --kill-after=60 1200 tools/cluster/test.sh

# Go benchmarks side by side with a PyTorch peer, then a table of ratios
# (tools/bench/run.sh; about 7 minutes on an idle machine). Not part of test.
bench:
	tools/bench/run.sh

# Decoding speed against llama.cpp (tools/decodebench/run.sh): 512-token
# prompt processing and greedy tokens/s on a random 110M Llama GGUF, F32 and
# Q8_0, 1 and 2 threads, with the ratios. Needs tools/llamacpp/node_modules.
bench-decode:
	tools/decodebench/run.sh

# Memory and speed at real sizes (tools/bench/scale.sh): random
# TinyLlama-1.1B and Llama-2-7B shapes in BF16 (about 35 GB of disk while
# it runs, deleted after), streamed merge and convert against cp + sync,
# peak RSS against the issue's bound, forward start to first logits.
bench-scale:
	tools/bench/scale.sh

# Every fuzz target in the repository, FUZZTIME each; tools/fuzz.sh finds
# them (tools/fuzz.sh --list shows the list).
fuzz:
	GO="$(GO)" FUZZTIME="$(FUZZTIME)" tools/fuzz.sh

demo: build
	SURGEON_HF_MIRROR=$${SURGEON_HF_MIRROR:-../shared/fixtures/hf-mirror} $(BIN)/surgeon apply recipes/shakespeare.toml
	tools/quickstart-table.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

generate:
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" $(GO) generate ./...

clean:
	rm -rf $(BIN)
