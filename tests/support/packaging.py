"""CNET as users install it, for tests and benchmarks: the wheel and sdist ``make dist`` builds, the offline
bundle ``make bundle`` builds (its wheelhouse kept outside the checkout, in ~/.cache/cnet), a fresh venv
with the wheel installed from that wheelhouse, away from the checkout (not editable), and an earlier
version of CNET built from this repository's own history (``git archive`` of a pinned commit, kept in
/var/cache/cnet-tests)."""
from __future__ import annotations

import shutil
import site
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from cnetd import __version__

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"  # as make's: one every user (the workloads' nobody) can run


def build_dist(into: Path) -> Path:
    """The wheel (and sdist) of the checkout, in ``into``."""
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", str(into),
                    str(REPO)], check=True, capture_output=True, timeout=300, cwd=REPO)
    return into / f"cnet-{__version__}-py3-none-any.whl"


def build_bundle(dist: Path) -> Path:
    """The offline bundle of the wheel in ``dist`` (``build_dist`` first), unpacked beside it."""
    done = subprocess.run([sys.executable, str(REPO / "tools" / "bundle.py"), "--dist", str(dist)], check=True,
                          capture_output=True, text=True, timeout=1200)
    archive = next(dist.glob(f"cnet-{__version__}-linux-*.tar.gz"))
    with tarfile.open(archive) as bundle:
        bundle.extractall(dist)  # our own archive, just made
    assert archive.name in done.stdout
    return dist / archive.name.removesuffix(".tar.gz")


def fresh_venv(folder: Path, wheel: Path, wheelhouse: Path) -> Path:
    """A venv at ``folder`` with the wheel installed from ``wheelhouse`` alone (no index); its bin dir."""
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(folder)], check=True, timeout=120)
    subprocess.run([str(folder / "bin" / "pip"), "install", "--quiet", "--no-index", "--find-links", str(wheelhouse),
                    str(wheel)], check=True, capture_output=True, timeout=900, cwd=folder)
    return folder / "bin"


# Outside the checkout, kept between runs, and where the old node's workloads (nobody) can run its Python.
PREVIOUS_CACHE = Path("/var/cache/cnet-tests")


def previous_version(commit: str) -> Path:
    """The bin dir of a venv running CNET as it was at ``commit`` (built from ``git archive`` of this
    repository's history, kept by commit). Its dependencies are this venv's (a
    .pth names its site-packages, after the venv's own): the old code runs on the libraries it ran on."""
    PREVIOUS_CACHE.mkdir(parents=True, exist_ok=True)
    PREVIOUS_CACHE.chmod(0o755)
    home = PREVIOUS_CACHE / f"previous-{commit}"
    bin_dir = home / "venv" / "bin"
    if (home / ".complete").exists():
        return bin_dir
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    home.chmod(0o755)  # the old node's workloads (nobody) run its Python
    known = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True)
    if known.returncode != 0:
        raise RuntimeError(f"commit {commit} is not in this clone's history (a shallow clone?): the previous "
                           "version is built from it")
    with tempfile.TemporaryDirectory(prefix="cnet-previous-") as scratch:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", scratch], input=archive, check=True)
        subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", str(home), scratch],
                       check=True, capture_output=True, timeout=300, cwd=scratch)
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(home / "venv")], check=True, timeout=120)
    own_site = next((home / "venv" / "lib").glob("python3*/site-packages"))
    (own_site / "dependencies.pth").write_text(f"{site.getsitepackages()[0]}\n")
    wheel = next(home.glob("cnet-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(own_site),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    _console_scripts(bin_dir)
    (home / ".complete").touch()
    return bin_dir


def _console_scripts(bin_dir: Path) -> None:
    """``cnetd``, ``cnet-agent`` and ``cnet`` of the old version, run by its venv's Python (pip --target
    puts none in the venv)."""
    for name, module in (("cnetd", "cnetd.launcher.main"), ("cnet-agent", "cnetd.launcher.main"),
                         ("cnet", "cnetd.cli.main")):
        script = bin_dir / name
        script.write_text(f"#!{bin_dir / 'python'}\nimport sys\nfrom {module} import main\nsys.exit(main())\n")
        script.chmod(0o755)
