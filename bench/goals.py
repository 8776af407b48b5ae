"""Goals beside a benchmark's figures. A figure keeps its plain number where tools read it; the JSON's
``goals`` names each figure that has a goal (by its dotted path), with its value, the goal and whether it
is ``met``, so that a reader sees at once which goals hold."""
from __future__ import annotations

from typing import Any


def at_least(value: float, goal: float) -> dict[str, Any]:
    return {"value": value, "goal": f">= {goal:g}", "met": value >= goal}


def at_most(value: float, goal: float) -> dict[str, Any]:
    return {"value": value, "goal": f"<= {goal:g}", "met": value <= goal}


def measured(value: Any, why: str) -> dict[str, Any]:
    """A figure no issue set a goal for (a baseline, a property of the machine): ``met`` is None, and the
    goal says why."""
    return {"value": value, "goal": f"none: {why}", "met": None}
