"""Logical IDs as if the serving stack's grouping constructs were not there.

CDK derives a resource's logical ID from its construct path, and CloudFormation replaces a
resource whose logical ID changed: for the endpoint, the alarms and the dashboard, which have
fixed physical names, the replacement fails or deletes them. The serving stack was deployed
with its resources directly under the stack; its code is now grouped into one construct per
concern (a ``Group``), and the stack leaves the groups' ids out of every logical ID, so the
template stays what it was. tests/infra/test_serving_logical_ids.py pins the IDs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from aws_cdk import CfnElement, Names, Stack
from constructs import Construct, IConstruct

# aws-cdk-lib core/lib/private/uniqueid.ts, which CDK does not export.
_HIDDEN_ID = "Default"
_HIDDEN_FROM_HUMAN_ID = "Resource"
_HASH_LEN = 8
_MAX_HUMAN_LEN = 240
_MAX_ID_LEN = 255
# A unique id embedded in a construct id ends with its path hash.
_EMBEDDED_ID = re.compile(rf"[0-9A-F]{{{_HASH_LEN}}}$")


class Group(Construct):
    """A construct that organises the code, not the template: its id is left out of the
    logical IDs of the resources under it (see ``FlatLogicalIds``)."""


def make_unique_id(components: Sequence[str]) -> str:
    """CDK's ``makeUniqueId``: a single component as-is, otherwise a readable part plus a hash
    of the whole path."""
    components = [c for c in components if c != _HIDDEN_ID]
    if not components:
        raise ValueError("a unique id needs at least one path component")
    if len(components) == 1:
        candidate = _alphanumeric(components[0])
        if len(candidate) <= _MAX_ID_LEN:
            return candidate
    digest = hashlib.md5("/".join(components).encode(), usedforsecurity=False).hexdigest()
    human = "".join(
        _alphanumeric(c) for c in _remove_dupes(components) if c != _HIDDEN_FROM_HUMAN_ID
    )
    return human[:_MAX_HUMAN_LEN] + digest[:_HASH_LEN].upper()


def _alphanumeric(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", s)


def _remove_dupes(path: Sequence[str]) -> list[str]:
    # As CDK does: a component is dropped when the previous one ends with it.
    kept: list[str] = []
    for component in path:
        if not kept or not kept[-1].endswith(component):
            kept.append(component)
    return kept


class FlatLogicalIds:
    """A stack's logical IDs from construct paths without their ``Group`` ids.

    CDK also writes construct paths into construct ids: the Lambda permission an EventBridge
    target adds is ``AllowEventRule<the function's unique id>``, and that unique id comes from
    the function's full path. Such embedded ids of constructs under a group are translated
    too, to what they were without the groups.
    """

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        # The unique id of each construct under a group (Names.node_unique_id) -> without groups.
        self._flat_unique_ids: dict[str, str] = {}
        # Path components seen before -> what they translate to (most to themselves).
        self._translated: dict[str, str] = {}

    def apply(self) -> None:
        """Pin the logical ID of every element under a group (once the stack is built): one
        pass, where an allocation override would be called back from jsii ~850 times a synth."""
        for construct in self._stack.node.find_all():
            if isinstance(construct, CfnElement) and any(
                isinstance(scope, Group) for scope in construct.node.scopes
            ):
                construct.override_logical_id(self.allocate(construct))

    def allocate(self, element: CfnElement) -> str:
        scopes = element.node.scopes
        below_stack = scopes[self._index(scopes) + 1 :]
        components = [s.node.id for s in below_stack if not isinstance(s, Group)]
        return make_unique_id([self._translate(c) for c in components])

    def _index(self, scopes: Sequence[IConstruct]) -> int:
        for index, scope in enumerate(scopes):
            if scope is self._stack:
                return index
        raise ValueError("the element is not in this stack")

    def _translate(self, component: str) -> str:
        if component in self._translated:
            return self._translated[component]
        result = component
        if _EMBEDDED_ID.search(component):
            found = self._embedded(component)
            if found is None:
                # Constructs may have been added since the last look (a walk of the whole
                # stack through jsii: done once per component, whatever it finds).
                self._flat_unique_ids = self._collect()
                found = self._embedded(component)
            if found is not None:
                unique_id, flat = found
                result = component[: -len(unique_id)] + flat
        self._translated[component] = result
        return result

    def _embedded(self, component: str) -> tuple[str, str] | None:
        for unique_id, flat in self._flat_unique_ids.items():
            if component.endswith(unique_id):
                return unique_id, flat
        return None

    def _collect(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for construct in self._stack.node.find_all():
            scopes = construct.node.scopes
            if not any(isinstance(s, Group) for s in scopes):
                continue
            # Names.node_unique_id: every id below the app, the stack's own included.
            components = [s.node.id for s in scopes[1:] if not isinstance(s, Group)]
            found[Names.node_unique_id(construct.node)] = make_unique_id(components)
        return found
