"""The App being built, with the stacks made so far, so later builders can refer to earlier ones."""

from __future__ import annotations

from dataclasses import dataclass, field

from cdktn import App

from fleetform.config.models import FleetConfig
from fleetform.stacks.base import FleetStack


@dataclass
class FleetApp:
    app: App
    config: FleetConfig
    stacks: dict[str, FleetStack] = field(default_factory=dict)

    def add(self, stack: FleetStack, depends_on: list[str] | tuple[str, ...] = ()) -> FleetStack:
        if stack.stack_name in self.stacks:
            raise ValueError(f"stack {stack.stack_name!r} defined twice")
        self.stacks[stack.stack_name] = stack
        for name in depends_on:
            if name in self.stacks:
                stack.add_dependency(self.stacks[name])
        return stack
