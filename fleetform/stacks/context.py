"""The App being built, with the stacks made so far, so later builders can refer to earlier ones."""

from __future__ import annotations

from dataclasses import dataclass, field

from cdktn import App

from fleetform.config.models import Account, FleetConfig
from fleetform.stacks.base import FleetStack


@dataclass
class FleetApp:
    app: App
    config: FleetConfig
    stacks: dict[str, FleetStack] = field(default_factory=dict)
    # new accounts (no id in their file): name -> reference to the id the organization stack creates
    created_account_ids: dict[str, str] = field(default_factory=dict)

    def account_id(self, account: Account) -> str:
        """The account's id as its stacks use it: the file's, or for a new account a reference to the
        organization stack's account resource (remote state in any other stack)."""
        if account.id is not None:
            return account.id
        try:
            return self.created_account_ids[account.name]
        except KeyError:
            raise ValueError(f"account {account.name!r} has no id and the organization stack does not create "
                             "it (build the organization stack first)") from None

    def add(self, stack: FleetStack, depends_on: list[str] | tuple[str, ...] = ()) -> FleetStack:
        if stack.stack_name in self.stacks:
            raise ValueError(f"stack {stack.stack_name!r} defined twice")
        self.stacks[stack.stack_name] = stack
        for name in depends_on:
            if name in self.stacks:
                stack.add_dependency(self.stacks[name])
        return stack
