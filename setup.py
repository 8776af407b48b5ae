"""CNET: an edge-cluster agent (supervisord-managed node, ZeroMQ mesh, LMDB ledger)."""
import re
from pathlib import Path

from setuptools import find_packages, setup

# The version lives in one place, cnetd/__init__.py: read, not imported (the package's dependencies may not
# be installed yet).
VERSION = re.search(r'^__version__ = "([^"]+)"', (Path(__file__).parent / "cnetd" / "__init__.py").read_text(),
                    re.M).group(1)

setup(
    name="cnet",
    version=VERSION,
    description="Edge-cluster agent: runs processes, containers and model services across a tree of nodes",
    python_requires=">=3.10",
    packages=find_packages(include=[name for top in ("cnetd", "mesh", "ledger", "workers", "inference", "gateway", "ui")
                                    for name in (top, f"{top}.*")]),
    package_data={"ui": ["static/*.html", "static/*.css", "static/js/*.js"]},
    install_requires=[
        "pyzmq>=25",
        "supervisor>=4.2",
        "supervisor_twiddler>=1.0",
        "falcon>=3.1",
        "gunicorn>=21",
        "orjson>=3.9",
        "lmdb>=1.4",
        "pyyaml>=6",
        "psutil>=5.9",
        "click>=8.1",  # the cnet command line: commands,
        "rich>=13",  # tables and progress bars,
        "humanfriendly>=10",  # sizes and ages people read and write,
        "requests>=2.31",
        "requests-toolbelt>=1.0",  # and uploads streamed from disk
        "nvidia-ml-py>=12",
        "onnxruntime>=1.16",
        "opencv-python-headless>=4.10,<5",
        "numpy>=1.24",
        "docker>=7",
        "prometheus-client>=0.17",
        "botocore>=1.31",  # the gateway checks S3 signatures with its signers
        "paho-mqtt>=2.0",  # a stream's events to an MQTT broker
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-timeout>=2", "build>=1",  # make dist, and the tests of the wheel and the bundle
                 "requests>=2.31", "nudenet==3.4.2", "scikit-image>=0.21",
                 "onnx>=1.14", "boto3>=1.28", "awscli>=1.29", "torch==2.13.0",  # the CPU build on these machines
                 "playwright==1.65.2", "pytest-playwright==0.10.0", "hypothesis>=6", "schemathesis>=4",
                 "tritonclient[http]==2.73.0",  # Triton's own client, against the v2 protocol
                 # TensorFlow's runtimes, and onnx2tf to convert the test model (its tf-keras: see the Makefile)
                 "tensorflow-cpu==2.21.0", "ai-edge-litert==2.3.0", "onnx2tf==1.28.8", "onnxslim==0.1.98",
                 "onnx-graphsurgeon==0.6.1", "sng4onnx==2.0.1",
                 # the image's cluster (make image-cluster) and its Kubernetes manifests, checked offline
                 "podman-compose==1.6.0", "kubernetes-validate==1.37.0"],
        "torch": ["torch>=2.1"],
        "tflite": ["ai-edge-litert>=1.2"],
        "tensorflow": ["tensorflow-cpu>=2.16"],
    },
    entry_points={
        "console_scripts": [
            "cnet=cnetd.cli.main:main",
            "cnetd=cnetd.launcher.main:main",
            "cnet-agent=cnetd.launcher.main:main",
            "cnet-tap=mesh.tap:main",
            "cnet-inference-yolo=inference.yolo_service:main",
            "cnet-inference-opencv=inference.opencv_service:main",
            "cnet-gateway-data=gateway.server:main",
        ],
    },
)
