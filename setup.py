"""Installs the mrcnn package: `pip install -e .[dev]`."""

from setuptools import find_packages, setup

setup(
    name="mrcnn",
    version="0.1.0",
    description="Mask R-CNN instance segmentation: registered components built from yaml configs",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    # configs/ (detectron2's zoo configs and ours) ships inside the package as mrcnn/model_zoo/configs,
    # so mrcnn.model_zoo finds them after `pip install .`; a source checkout reads configs/ itself.
    packages=find_packages(include=["mrcnn", "mrcnn.*"]) + ["mrcnn.model_zoo.configs"],
    package_dir={"mrcnn.model_zoo.configs": "configs"},
    package_data={"mrcnn.model_zoo.configs": ["*.yaml", "**/*.yaml"]},
    install_requires=[
        "torch>=2.4",
        "torchvision>=0.19",
        "fvcore>=0.1.5",
        "iopath>=0.1.9",
        "pycocotools>=2.0.6",
        "omegaconf>=2.1",
        "PyYAML>=5.1",
        "tabulate",
        "numpy",
        "Pillow>=9",
        "matplotlib",
        "tensorboard",
        "tqdm",
    ],
    extras_require={
        # ruff pinned: its formatter's output may change between releases, and CI checks it
        "dev": ["pytest>=7", "pytest-timeout", "faster-coco-eval>=1.6", "ruff==0.17.6"],
        "fast-eval": ["faster-coco-eval>=1.6"],
        # ONNX export and its check in ONNX Runtime, and video input of tools/demo.py
        "export": ["onnx>=1.16", "onnxruntime>=1.18", "av>=12"],
    },
)
