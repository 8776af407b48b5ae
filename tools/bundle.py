"""``make bundle``: one archive that installs CNET on a machine that reaches no package registry.

    python tools/bundle.py [--extras tflite,torch] [--dist dist]

Writes ``dist/cnet-VERSION-linux-MACHINE-cpXY[-EXTRAS].tar.gz`` holding the wheel ``make dist`` built, a
wheelhouse of every runtime dependency (those of the extras asked for too: the optional runtimes are
options, never forced in), the systemd unit, a config template and ``install.sh``. The wheelhouse is
made once per set of requirements and kept outside the checkout (``$CNET_CACHE``, default
``~/.cache/cnet``), since making it takes minutes and its inputs change rarely.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cnetd import __version__  # noqa: E402  (the version, written once)

CACHE = Path.home() / ".cache" / "cnet"


def python_tag() -> str:
    return f"cp{sys.version_info.major}{sys.version_info.minor}"


def bundle_name(extras: list[str]) -> str:
    suffix = f"-{'-'.join(extras)}" if extras else ""
    return f"cnet-{__version__}-linux-{platform.machine()}-{python_tag()}{suffix}"


def requirements(wheel: Path, extras: list[str]) -> list[str]:
    """The wheel's own requirements (its metadata), those of the extras asked for included."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        lines = archive.read(metadata).decode().splitlines()
    wanted = []
    for line in lines:
        if not line.startswith("Requires-Dist: "):
            continue
        requirement, _, marker = line.removeprefix("Requires-Dist: ").partition(";")
        extra = marker.split("extra ==")[1].strip().strip("'\"") if "extra ==" in marker else None
        if extra is None or extra in extras:
            wanted.append(requirement.strip())
    return sorted(wanted)


def wheelhouse(needed: list[str], cache: Path) -> Path:
    """Wheels of ``needed`` and all they need, for this platform and Python: made once per set, then kept."""
    key = hashlib.sha256("\n".join([python_tag(), platform.machine(), *needed]).encode()).hexdigest()[:16]
    house = cache / f"wheelhouse-{key}"
    if (house / ".complete").exists():
        return house
    partial = Path(tempfile.mkdtemp(prefix="wheelhouse-", dir=cache))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(partial), *needed],
                   check=True)
    (partial / ".complete").touch()
    shutil.rmtree(house, ignore_errors=True)
    partial.rename(house)
    return house


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", default="", help="optional runtimes to include: tflite, torch, tensorflow")
    parser.add_argument("--dist", default=str(REPO / "dist"))
    args = parser.parse_args()
    extras = sorted(filter(None, args.extras.split(",")))
    dist = Path(args.dist)
    wheel = dist / f"cnet-{__version__}-py3-none-any.whl"
    if not wheel.exists():
        sys.exit(f"bundle: {wheel} is missing: run make dist first")
    cache = Path(os.environ.get("CNET_CACHE", CACHE))
    cache.mkdir(parents=True, exist_ok=True)
    house = wheelhouse(requirements(wheel, extras), cache)
    name = bundle_name(extras)
    archive = dist / f"{name}.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as bundle:  # wheels are compressed already
        bundle.add(wheel, f"{name}/{wheel.name}")
        for dependency in sorted(house.glob("*.whl")):
            bundle.add(dependency, f"{name}/wheelhouse/{dependency.name}")
        for source, target in ((REPO / "deploy/bundle/install.sh", "install.sh"),
                               (REPO / "deploy/bundle/config.yaml", "config.yaml"),
                               (REPO / "deploy/systemd/cnet.service", "cnet.service"),
                               (REPO / "README.md", "README.md")):
            bundle.add(source, f"{name}/{target}")
        env = f"CNET_VERSION={__version__}\nPYTHON_TAG={python_tag()}\nEXTRAS={','.join(extras)}\n".encode()
        info = tarfile.TarInfo(f"{name}/bundle.env")
        info.size, info.mode = len(env), 0o644
        bundle.addfile(info, io.BytesIO(env))
    print(f"bundle: {archive} ({archive.stat().st_size / 2**20:.0f} MiB, {len(list(house.glob('*.whl')))} wheels)")


if __name__ == "__main__":
    main()
