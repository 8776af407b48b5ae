"""``cnet``: commands over a node's API. The node is ``--addr`` / ``CNET_ADDR`` (default
http://127.0.0.1:8080), the token ``--token`` / ``CNET_TOKEN``. A workload is named by its id, its name or the
start of its id. A refusal prints the node's message and exits 1; bad usage exits 2. Reads take ``-o json`` for
scripts."""
from __future__ import annotations

import json
import mimetypes
import sys
import time
from pathlib import Path
from typing import Any

import click
import yaml
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from cnetd import __version__
from cnetd.cli import views
from cnetd.cli.client import DEFAULT_ADDR, NodeClient, Refused
from cnetd.cli.spec import BadSpec, load, quick_process

FOLLOW_INTERVAL_S = 0.5
output_option = click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table",
                             help="table for people, json for scripts")


class _WorkloadRef(click.ParamType):
    """A workload named on the command line: its id, its name, or the start of its id (``NodeClient.workload_id``)."""
    name = "workload"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        return ctx.find_object(NodeClient).workload_id(value) if ctx is not None else value


workload_argument = click.argument("workload_id", type=_WorkloadRef(), metavar="WORKLOAD")


class _Cli(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (Refused, BadSpec) as exc:
            click.echo(f"cnet: {exc}", err=True)
            sys.exit(1)


@click.group(cls=_Cli)
@click.version_option(__version__, prog_name="cnet")
@click.option("--addr", envvar="CNET_ADDR", default=DEFAULT_ADDR, show_default=True, help="the node's API")
@click.option("--token", envvar="CNET_TOKEN", default=None, help="the node's auth.token")
@click.pass_context
def cli(ctx: click.Context, addr: str, token: str | None) -> None:
    """Run and watch workloads on a CNET cluster through any of its nodes."""
    ctx.obj = NodeClient(addr, token)


@cli.command()
@output_option
@click.pass_obj
def status(node: NodeClient, output: str) -> None:
    """This node: identity, resources, neighbours."""
    health, resources, nodes = node.get("/api/health"), node.get("/api/resources"), node.get("/api/nodes")
    if output == "json":
        views.as_json({"health": health, "resources": resources, "nodes": nodes})
        return
    views.out.print(f"node [bold]{health['node']}[/] {health['version']}, up {views.age(health['uptime_s'])}, "
                    f"at {health['api_url']}")
    for kind in ("capacity", "allocated", "available"):
        views.out.print(f"  {kind:<10} {views.resources_line(resources[kind])}")
    if nodes.get("parent") or nodes.get("children") or nodes.get("peers"):
        views.out.print(views.neighbours(nodes))
    else:
        views.out.print("  neighbours none")


NODES_PAGE = 1000  # children per request of cnet nodes --all (the API's most)


@cli.command()
@click.option("-a", "--all", "every_child", is_flag=True, help="every child, page by page (the first page alone "
              "is shown otherwise)")
@output_option
@click.pass_obj
def nodes(node: NodeClient, every_child: bool, output: str) -> None:
    """This node's parent, children and peers."""
    view = node.get("/api/nodes")
    if every_child and view["next"]:
        for page in node.pages("/api/nodes", NODES_PAGE, after=view["next"]):
            view = {**view, "children": view["children"] + page["children"], "next": page["next"]}
    if output == "json":
        views.as_json(view)
        return
    views.out.print(views.neighbours(view))
    if view["next"]:
        summary = view["summary"]
        views.out.print(f"{summary['children'] - len(view['children'])} more children ({summary['children']} in all, "
                        f"{summary['children_online']} online): cnet nodes --all")


@cli.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="finished workloads too")
@output_option
@click.pass_obj
def ps(node: NodeClient, show_all: bool, output: str) -> None:
    """Workloads on this node (and the ones it delegated)."""
    listed = [view for view in node.workloads() if show_all or view["status"] not in views.TERMINAL]
    views.as_json(listed) if output == "json" else views.out.print(views.workloads(listed))


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("target")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--cpu", type=float, default=0.1, show_default=True, help="cores (cnet run process)")
@click.option("--memory", default=None, help="e.g. 512MiB (cnet run process)")
@click.option("--name", default=None, help="the workload's name (cnet run process)")
@output_option
@click.pass_obj
def run(node: NodeClient, target: str, command: tuple[str, ...], cpu: float, memory: str | None,
        name: str | None, output: str) -> None:
    """Submit a workload: a spec file (YAML or JSON; - reads stdin), or `process -- COMMAND ARGS…`."""
    if target == "process":
        if not command:
            raise click.UsageError("cnet run process needs a command: cnet run process --cpu 1 -- sleep 60")
        body = quick_process(list(command), cpu, memory, name)
    elif command:
        raise click.UsageError(f"unexpected arguments after {target}: {' '.join(command)}")
    else:
        text = sys.stdin.read() if target == "-" else _read(target)
        body = load(text)
    record = node.post("/api/workloads", body)
    views.as_json(record) if output == "json" else views.out.print(views.workloads([record]))


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="TARGET") from None


@cli.command()
@workload_argument
@output_option
@click.pass_obj
def show(node: NodeClient, workload_id: str, output: str) -> None:
    """One workload, whole."""
    record = node.get(f"/api/workloads/{workload_id}")
    if output == "json":
        views.as_json(record)
        return
    if (record.get("deployment") or {}).get("autoscale"):
        views.out.print(views.autoscaling(record["deployment"]))
    print(yaml.safe_dump(views.readable_times(record), sort_keys=False, allow_unicode=True), end="")


@cli.command()
@workload_argument
@click.option("-f", "--follow", is_flag=True, help="keep printing until the workload ends")
@click.option("--stderr", "stderr", is_flag=True, help="its stderr instead of stdout")
@click.option("--tail", type=click.IntRange(0, 10_000), default=200, show_default=True, help="last lines (without -f)")
@click.pass_obj
def logs(node: NodeClient, workload_id: str, follow: bool, stderr: bool, tail: int) -> None:
    """A workload's output. With -f, all of it and then what comes, until it ends."""
    stream = "stderr" if stderr else "stdout"
    if not follow:
        print(node.get(f"/api/workloads/{workload_id}/logs", tail=tail)[stream], end="")
        return
    offset = 0
    while True:
        finished = node.get(f"/api/workloads/{workload_id}")["status"] in views.TERMINAL
        chunk = node.get(f"/api/workloads/{workload_id}/logs/{stream}", offset=offset)
        sys.stdout.write(chunk["data"])
        sys.stdout.flush()
        offset = chunk["next_offset"]
        if finished and not chunk["data"]:
            return
        if not chunk["data"]:
            time.sleep(FOLLOW_INTERVAL_S)


@cli.command()
@workload_argument
@click.option("-f", "--follow", is_flag=True, help="keep printing events as they come")
@click.option("--last", type=click.IntRange(0, 10_000), default=20, show_default=True, help="kept events first")
@click.option("--json", "as_json", is_flag=True, help="each event as one JSON line")
@click.pass_obj
def events(node: NodeClient, workload_id: str, follow: bool, last: int, as_json: bool) -> None:
    """A stream's events: its last kept ones, and with -f each new one as it comes."""
    for event in node.events(workload_id, last, follow):
        click.echo(json.dumps(event) if as_json else views.event_line(event))


@cli.command()
@workload_argument
@click.pass_obj
def stop(node: NodeClient, workload_id: str) -> None:
    """Stop a workload (it stays listed until removed)."""
    click.echo(f"{workload_id} {node.post(f'/api/workloads/{workload_id}/stop')['status']}")


@cli.command()
@workload_argument
@click.argument("replicas", type=click.IntRange(1))
@click.pass_obj
def scale(node: NodeClient, workload_id: str, replicas: int) -> None:
    """Change a deployment's count of replicas (extra ones drain, then stop)."""
    record = node.patch(f"/api/workloads/{workload_id}", {"replicas": replicas})
    click.echo(f"{workload_id} scaled to {record['deployment']['replicas']} ({record['deployment']['summary']} now)")


@cli.command()
@workload_argument
@click.option("--min", "min_replicas", type=click.IntRange(0), help="fewest replicas (0: none when idle)")
@click.option("--max", "max_replicas", type=click.IntRange(1), help="most replicas")
@click.option("--target", "target_ongoing_requests", type=click.FloatRange(0, min_open=True),
              help="ongoing requests per replica to aim for")
@click.option("--upscale-delay", "upscale_delay_s", type=click.FloatRange(0), help="seconds of more load before more")
@click.option("--downscale-delay", "downscale_delay_s", type=click.FloatRange(0), help="seconds of less before fewer")
@click.pass_obj
def autoscale(node: NodeClient, workload_id: str, **policy: Any) -> None:
    """Change an autoscaled deployment's bounds and policy (the options given; the others are kept)."""
    given = {name: value for name, value in policy.items() if value is not None}
    if not given:
        raise click.UsageError("give at least one of --min, --max, --target, --upscale-delay, --downscale-delay")
    record = node.patch(f"/api/workloads/{workload_id}", {"autoscale": given})
    views.out.print(views.autoscaling(record["deployment"]))


@cli.command()
@workload_argument
@click.pass_obj
def rm(node: NodeClient, workload_id: str) -> None:
    """Stop and delete a workload (a data workload: its files too)."""
    node.delete(f"/api/workloads/{workload_id}")
    click.echo(f"{workload_id} removed")


@cli.command()
@workload_argument
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--confidence", type=click.FloatRange(0, 1), default=None, help="the least confidence shown")
@click.option("--draw", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write the image with its boxes here")
@output_option
@click.pass_obj
def predict(node: NodeClient, workload_id: str, image: Path, confidence: float | None, draw: Path | None,
            output: str) -> None:
    """Detections of a model service in IMAGE."""
    content_type = mimetypes.guess_type(image.name)[0] or "application/octet-stream"
    params = {} if confidence is None else {"confidence": confidence}
    answer = node.predict(workload_id, image.read_bytes(), content_type, params)
    if draw is not None:
        from cnetd.cli.drawing import draw_detections  # OpenCV loads only for --draw
        draw_detections(image, answer["detections"], draw)
    views.as_json(answer) if output == "json" else views.out.print(views.detections(answer["detections"]))


@cli.group()
def rollout() -> None:
    """A deployment's revisions: how its rollout stands, its history, promote a canary, go back."""


@rollout.command("status")
@workload_argument
@output_option
@click.pass_obj
def rollout_status(node: NodeClient, workload_id: str, output: str) -> None:
    """The active revision, the rollout under way (if any), and which revision each replica runs."""
    record = node.get(f"/api/workloads/{workload_id}")
    views.as_json(record["deployment"]) if output == "json" else views.out.print(views.rollout(record))


@rollout.command("history")
@workload_argument
@output_option
@click.pass_obj
def rollout_history(node: NodeClient, workload_id: str, output: str) -> None:
    """Every revision kept: its state, when it was made, why it ended as it did."""
    revisions = node.get(f"/api/workloads/{workload_id}")["deployment"]["revisions"]
    views.as_json(revisions) if output == "json" else views.out.print(views.revisions(revisions))


@rollout.command("promote")
@workload_argument
@click.pass_obj
def rollout_promote(node: NodeClient, workload_id: str) -> None:
    """The rollout waiting on its canaries goes on."""
    record = node.post(f"/api/workloads/{workload_id}/promote")
    click.echo(f"{workload_id}: revision {record['deployment']['rollout']['revision']} promoted")


@rollout.command("undo")
@workload_argument
@click.pass_obj
def rollout_undo(node: NodeClient, workload_id: str) -> None:
    """Go back: the rollout under way is rolled back; without one, the previous revision rolls out again."""
    record = node.post(f"/api/workloads/{workload_id}/rollback")
    going = record["deployment"].get("rollout")
    click.echo(f"{workload_id}: rolling back to revision {going['revision']}" if going and going.get("undo")
               else f"{workload_id}: rollout of revision {going['revision'] if going else '?'} rolled back")


@cli.group()
def data() -> None:
    """Files stored on the node (data workloads)."""


@data.command("put")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@output_option
@click.pass_obj
def data_put(node: NodeClient, paths: tuple[Path, ...], output: str) -> None:
    """Upload files or directories: one data workload each, with a progress bar."""
    stored = []
    with Progress("{task.description}", BarColumn(), DownloadColumn(binary_units=True), TransferSpeedColumn(),
                  console=views.out, transient=output == "json") as progress:
        for path in paths:
            task = progress.add_task(path.name, total=None)
            stored.append(node.upload(path, lambda sent, total, task=task: progress.update(task, completed=sent,
                                                                                            total=total)))
    if output == "json":
        views.as_json(stored)
        return
    for record in stored:
        views.out.print(f"{record['data_key']} {record['name']} ({record['config']['files']} files, "
                        f"{views.size(record['config']['size_bytes'])})")


@data.command("ls")
@output_option
@click.pass_obj
def data_ls(node: NodeClient, output: str) -> None:
    """Stored data."""
    items = node.get("/api/data")["data"]
    views.as_json(items) if output == "json" else views.out.print(views.data(items))


@data.command("rm")
@click.argument("data_key")
@click.pass_obj
def data_rm(node: NodeClient, data_key: str) -> None:
    """Delete stored data."""
    node.delete(f"/api/data/{data_key}")
    click.echo(f"{data_key} removed")


@cli.group()
def models() -> None:
    """The node's model cache."""


@models.command("ls")
@output_option
@click.pass_obj
def models_ls(node: NodeClient, output: str) -> None:
    """Models on the node: hash, size, source, who uses them; a fetch under way shows how far it is."""
    cache = node.get("/api/models")
    if output == "json":
        views.as_json(cache)
        return
    views.out.print(views.models(cache["models"]))
    views.out.print(f"{views.size(cache['cached_bytes'])} of {views.size(cache['cache_bytes'])} cached")


@models.command("rm")
@click.argument("sha256")
@click.pass_obj
def models_rm(node: NodeClient, sha256: str) -> None:
    """Evict a model no workload uses."""
    node.delete(f"/api/models/{sha256}")
    click.echo(f"{sha256} evicted")


def main() -> None:
    cli(prog_name="cnet")
