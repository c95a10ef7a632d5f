# The two commands a newcomer runs: `make demo` and `make test`.
# Each sets up its own virtual environment in .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

DEMO_CONFIG := configs/shapes/cascade_mask_rcnn_shapes.yaml
DEMO_DIR := output/demo

.PHONY: venv test lint demo clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) setup.py
	$(PY) -m pip install --quiet -e .[dev,export]
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

# Lint and format check (configuration in pyproject.toml); `ruff format .` fixes the format.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Train a small Mask R-CNN on the synthetic shapes dataset (generated on first use) on the CPU,
# evaluate box and mask AP, draw predictions on a few validation images and plot the metrics.
# --resume makes a second `make demo` reuse the finished run instead of training again.
demo: $(STAMP)
	$(PY) tools/train_net.py --config-file $(DEMO_CONFIG) --resume OUTPUT_DIR $(DEMO_DIR) MODEL.DEVICE cpu
	$(PY) tools/demo.py --config-file $(DEMO_CONFIG) --input "datasets/shapes/val/00000[0-5].png" \
		--output $(DEMO_DIR)/predictions --opts MODEL.WEIGHTS $(DEMO_DIR)/model_final.pth MODEL.DEVICE cpu
	$(PY) tools/plot_metrics.py $(DEMO_DIR) --output $(DEMO_DIR)/plots
	$(PY) tools/print_results.py $(DEMO_DIR)

clean:
	rm -rf $(VENV) output .pytest_cache
