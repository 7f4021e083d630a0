"""Packaging for text4seg: text-as-mask segmentation with multimodal LLMs."""

from pathlib import Path

from setuptools import find_packages, setup

EXTRAS = {
    "train": ["peft>=0.13", "accelerate>=1.0", "bitsandbytes>=0.45"],
    "sam": ["segment-anything>=1.0", "torchvision>=0.20"],
    "flash": ["flash-attn>=2.6"],
    "demo": ["gradio>=5.0"],
    "video": ["av>=12", "scipy>=1.11"],
    "convert": ["sentencepiece>=0.2", "protobuf>=5"],
    "gcg": ["pycocoevalcap>=1.2"],  # METEOR / CIDEr of eval gcg (METEOR and its PTB tokenizer run Java)
    "dev": ["pytest>=8", "hypothesis>=6.100", "ruff>=0.6", "scipy>=1.11", "selenium>=4.20"],
}
# flash-attn builds from source against CUDA: keep it out of `all`, which must install on CPU machines.
EXTRAS["all"] = sorted({dep for name, deps in EXTRAS.items() if name != "flash" for dep in deps})

setup(
    name="text4seg",
    version="0.1.0",
    description="Text-as-mask segmentation: multimodal LLMs answer with semantic descriptors",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["text4seg", "text4seg.*", "data_builders", "data_builders.*"]),
    package_data={"text4seg": ["demo_assets/*.png", "demo_assets/*.json"]},  # the demo's bundled examples
    install_requires=[
        "torch>=2.4",
        "transformers>=5.0",
        "numpy>=1.24",
        "pillow>=10.0",
        "pycocotools>=2.0.7",
        "tqdm>=4.66",
    ],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["text4seg=text4seg.cli:main"]},
)
