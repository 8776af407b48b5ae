"""gunicorn's main for the api program (``cnetd.api.gunicorn_main``) leaves ``importlib.metadata`` unloaded until
it is used, and gunicorn's use of it still works. Each case runs in a fresh interpreter: what this one has
imported already is beside the point."""
from __future__ import annotations

from tests.support.fresh_python import fresh_python

# What the api master imports: gunicorn's app and arbiter, its gthread worker, and the node's hooks.
MASTER_IMPORTS = "import gunicorn.app.wsgiapp, gunicorn.arbiter, gunicorn.workers.gthread, cnetd.api.gunicorn_hooks\n"
LOADED = "print('zipfile' in sys.modules, 'csv' in sys.modules, 'email.message' in sys.modules)\n"


def _python(code: str) -> str:
    checked = fresh_python("import sys\n" + code)
    assert checked.returncode == 0, checked.stderr
    return checked.stdout.strip()


def test_the_api_master_loads_no_importlib_metadata() -> None:
    assert _python("import cnetd.api.gunicorn_main\n" + MASTER_IMPORTS + LOADED) == "False False False"


def test_control_without_the_deferral_gunicorn_loads_it() -> None:
    assert _python(MASTER_IMPORTS + LOADED) == "True True True"


def test_gunicorn_reads_metadata_through_the_deferred_module() -> None:
    """gunicorn's ``load_entry_point`` path: the module loads on first use, and forwards from then on."""
    code = ("import cnetd.api.gunicorn_main, gunicorn, gunicorn.util\n"
            "from cnetd.common.deferred_module import DeferredModule\n"
            "assert isinstance(gunicorn.util.importlib_metadata, DeferredModule)\n"
            "print(gunicorn.util.importlib_metadata.version('gunicorn') == gunicorn.__version__)\n"
            "print(type(sys.modules['importlib.metadata']).__name__, "
            "gunicorn.util.importlib_metadata.distribution('gunicorn').name)\n")
    assert _python(code).splitlines() == ["True", "module gunicorn"]


def test_the_package_attribute_reaches_the_module_too() -> None:
    code = ("import cnetd.api.gunicorn_main, importlib, gunicorn\n"
            "print(importlib.metadata.version('gunicorn') == gunicorn.__version__)\n")
    assert _python(code) == "True"


def test_a_module_imported_already_is_left_as_it_is() -> None:
    code = ("import importlib.metadata\nfrom cnetd.common.deferred_module import defer_import\n"
            "defer_import('importlib.metadata')\nprint(sys.modules['importlib.metadata'] is importlib.metadata)\n")
    assert _python(code) == "True"
