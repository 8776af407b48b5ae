"""``make image``: CNET's node image, built with Podman and nothing pulled from a registry.

    python tools/image.py [--print-tag]

1. The base: a Debian root filesystem made by debootstrap from Debian's packages (this machine's own apt
   mirror), imported into Podman as ``localhost/cnet-base:<suite>-<key>``. Its tarball is kept in
   ``$CNET_CACHE`` (default ``~/.cache/cnet``) by the hash of its inputs: debootstrap is the slow step.
2. The image: ``deploy/container/Containerfile`` on that base, installing the bundle ``make bundle`` wrote
   (the wheel and its wheelhouse), tagged ``localhost/cnet:<version>`` and ``localhost/cnet:latest``, in
   the docker format (Podman's OCI format drops HEALTHCHECK).

Prints the tags, the image's size and the time each step took.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bundle import CACHE, REPO, __version__, bundle_name  # tools/bundle.py, beside this file

SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "libglib2.0-0", "libgomp1")  # the interpreter; what OpenCV and
# onnxruntime's wheels link against beyond themselves
TRIMMED = ("var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale")
CONTAINER_DIR = REPO / "deploy" / "container"
IMAGE = "localhost/cnet"
LABEL = "org.opencontainers.image.title=cnet"  # the Containerfile's: what this tool may prune


def mirror() -> str:
    """This machine's Debian mirror (the one apt uses), so the base comes from where apt's packages do."""
    for sources in Path("/etc/apt/sources.list.d").glob("*.sources"):
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    return "http://deb.debian.org/debian"


def podman(*argv: str, capture: bool = False) -> str:
    done = subprocess.run(["podman", *argv], check=True, text=True,
                          stdout=subprocess.PIPE if capture else None)
    return done.stdout.strip() if capture else ""


def base_image(cache: Path) -> str:
    """The base's tag: imported already, imported from the cached root filesystem, or made and cached."""
    key = hashlib.sha256("\n".join([SUITE, "minbase", mirror(), *BASE_PACKAGES, *TRIMMED]).encode()).hexdigest()[:12]
    tag = f"localhost/cnet-base:{SUITE}-{key}"
    if subprocess.run(["podman", "image", "exists", tag]).returncode == 0:
        return tag
    rootfs_tar = cache / f"rootfs-{SUITE}-{key}.tar"
    if not rootfs_tar.exists():
        if shutil.which("debootstrap") is None:
            sys.exit("image: debootstrap is missing (apt-get install debootstrap; make image installs it)")
        root = Path(tempfile.mkdtemp(prefix="cnet-rootfs-", dir=cache))
        try:
            subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", SUITE,
                            str(root), mirror()], check=True, stdout=subprocess.DEVNULL)
            subprocess.run(["rm", "-rf", *map(str, root.glob("var/cache/apt/archives/*.deb")),
                            *(str(root / path) for path in TRIMMED)], check=True)
            partial = rootfs_tar.with_suffix(".partial")
            subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True)
            partial.rename(rootfs_tar)
            for stale in cache.glob(f"rootfs-{SUITE}-*.tar"):  # of other inputs: not used again
                if stale != rootfs_tar:
                    stale.unlink()
        finally:
            shutil.rmtree(root, ignore_errors=True)
    podman("import", "--quiet", str(rootfs_tar), tag, capture=True)
    for stale in podman("images", "--format", "{{.Repository}}:{{.Tag}}", "localhost/cnet-base", capture=True).split():
        if stale != tag:  # a base of other inputs; kept while an image still uses it
            subprocess.run(["podman", "rmi", stale], capture_output=True)
    return tag


def build(base: str) -> list[str]:
    name = bundle_name([])
    archive = REPO / "dist" / f"{name}.tar.gz"
    if not archive.exists():
        sys.exit(f"image: {archive} is missing: run make bundle first")
    tags = [f"{IMAGE}:{__version__}", f"{IMAGE}:latest"]
    with tempfile.TemporaryDirectory(prefix="cnet-image-") as context:
        for path in CONTAINER_DIR.iterdir():
            shutil.copy(path, context)
        shutil.copy(archive, context)
        podman("build", "--quiet", "--format", "docker", "--build-arg", f"BASE={base}", "--build-arg",
               f"BUNDLE={name}", *(option for tag in tags for option in ("--tag", tag)), context, capture=True)
    podman("image", "prune", "--force", "--filter", f"label={LABEL}", capture=True)  # the builds these replaced
    return tags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    cache = Path(os.environ.get("CNET_CACHE", CACHE))
    cache.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    base = base_image(cache)
    based = time.monotonic()
    tags = build(base)
    built = time.monotonic()
    size = int(json.loads(podman("image", "inspect", tags[0], capture=True))[0]["Size"])
    print(f"image: {' '.join(tags)} ({size / 1e6:.0f} MB) on {base}; base {based - started:.1f} s, "
          f"build {built - based:.1f} s")


if __name__ == "__main__":
    main()
