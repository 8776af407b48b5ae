"""``python -m cnetd.api.gunicorn_main GUNICORN-ARGUMENTS``: gunicorn's own main, for the api program
(``cnetd.api.server`` becomes it), with ``importlib.metadata`` deferred to its first use
(``cnetd.common.deferred_module``). gunicorn imports it at its top for ``egg:`` worker classes only, which the
node does not name: the api master and its worker hold 1.3 MiB less of an idle node."""
from cnetd.common.deferred_module import defer_import

defer_import("importlib.metadata")

from gunicorn.app.wsgiapp import run  # noqa: E402

if __name__ == "__main__":
    run(prog="gunicorn")
