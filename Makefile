# The two commands: `make demo` and `make test`. Each creates .venv and installs what it needs
# the first time (scripts/bootstrap: CPU torch unless a CUDA GPU is present or TORCH_SPEC says
# otherwise), then runs. `.ci/run` is `make test` on a clean checkout.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install lint clean-venv

install:
	@scripts/bootstrap

demo: install
	$(BIN)/coldstream demo $(ARGS)

# The README's test command: lint, format check, types, then every test (the integration tests
# start the embedded broker, load the real teacher and, when installed, a real Prometheus).
test: install
	@scripts/prometheus
	PATH="$(CURDIR)/$(BIN):$$PATH" sh -c 'ruff check . && ruff format --check . && mypy && pytest'

lint: install
	PATH="$(CURDIR)/$(BIN):$$PATH" sh -c 'ruff check . && ruff format --check . && mypy'

clean-venv:
	rm -rf $(VENV)
