"""The object store: etcd's part of the API server, with one revision counter and a bounded history.

Every change gets the next revision (the objects' ``resourceVersion``), is kept in a history of
the last N changes (the watch cache's window), and is offered to every open watch. A watch or a
paginated list that starts from a revision older than the window answers 410 Expired, as the
real server does once etcd has compacted.

The store belongs to the server's event loop: only that thread calls its mutating methods, so
a watch subscription and its catch-up from history happen with nothing in between. Stored
objects are never changed in place: an update stores a new dict, so a reader may keep one.

Inside ``dry_run()`` (DryRunnableStorage's dryRun) a write is checked as usual (a create still
answers 409 for a taken name) and answers what it would have stored, but nothing is committed:
no revision, no history, no watch event, no listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import random
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from hybrid_executor.testing.kube.errors import (
    already_exists,
    not_found,
    too_large_resource_version,
    too_old_resource_version,
)
from hybrid_executor.testing.kube.selectors import FieldSelector, LabelSelector

Key = tuple[str, str]  # (namespace, name); cluster-scoped objects have namespace ""
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's: no vowels, no look-alikes


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Change:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: str
    key: Key
    obj: dict[str, Any]
    prev: dict[str, Any] | None


@dataclass(eq=False)  # compared and hashed by identity: each open watch is one subscription
class Subscription:
    """One open watch: its filter and the queue its events are put on."""

    resource: str
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)

    def event_for(self, change: Change) -> dict[str, Any] | None:
        """The event this watch sees for a change, or None (the cacher's rules for filtered watches)."""
        if change.resource != self.resource:
            return None
        if self.namespace is not None and change.key[0] != self.namespace:
            return None
        now_passes = change.type != "DELETED" and self._passes(change.obj)
        before_passes = self._passes(change.prev) if change.prev is not None else False
        if change.type == "DELETED":
            return {"type": "DELETED", "object": change.obj} if before_passes else None
        if now_passes and before_passes:
            return {"type": "MODIFIED", "object": change.obj}
        if now_passes:
            return {"type": "ADDED", "object": change.obj}
        if before_passes:
            # An object that stops matching leaves the watch as a deletion: its old content, new revision.
            gone = copy.deepcopy(change.prev)
            assert gone is not None
            gone["metadata"]["resourceVersion"] = str(change.rv)
            return {"type": "DELETED", "object": gone}
        return None

    def _passes(self, obj: dict[str, Any] | None) -> bool:
        return obj is not None and self.labels.matches(obj) and self.fields.matches(obj)


class Store:
    def __init__(self, history: int = 1000) -> None:
        if history < 1:
            raise ValueError(f"history must keep at least 1 change, got {history}")
        self.revision = 0
        self.compacted = 0  # the newest revision that is no longer in the history
        self._objects: dict[str, dict[Key, dict[str, Any]]] = {}
        self._history: deque[Change] = deque(maxlen=history)
        self._subscriptions: set[Subscription] = set()
        self._listeners: list[Callable[[Change], None]] = []
        self._dry_run = False

    # --- reading -------------------------------------------------------------------------

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        obj = self._objects.get(resource, {}).get((namespace, name))
        if obj is None:
            raise not_found(resource, name)
        return obj

    def find(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._objects.get(resource, {}).get((namespace, name))

    def items(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        objects = self._objects.get(resource, {})
        if namespace is None:
            return list(objects.values())
        return [obj for (ns, _), obj in objects.items() if ns == namespace]

    def snapshot(self, resource: str, revision: int) -> dict[Key, dict[str, Any]]:
        """The objects of ``resource`` as they were at ``revision`` (410 if that is out of the window)."""
        if revision > self.revision:
            raise too_large_resource_version(revision, self.revision)
        if revision < self.compacted:
            raise too_old_resource_version(revision, self.compacted)
        objects = dict(self._objects.get(resource, {}))
        for change in reversed(self._history):
            if change.rv <= revision:
                break
            if change.resource != resource:
                continue
            if change.type == "ADDED":
                objects.pop(change.key, None)
            elif change.prev is not None:
                objects[change.key] = change.prev
        return objects

    def changes_since(self, revision: int) -> list[Change]:
        if revision > self.revision:
            raise too_large_resource_version(revision, self.revision)
        if revision < self.compacted:
            raise too_old_resource_version(revision, self.compacted)
        return [c for c in self._history if c.rv > revision]

    # --- writing -------------------------------------------------------------------------

    def create(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a new object, filling the metadata the server owns; 409 if the name is taken."""
        metadata = obj["metadata"]
        namespace = metadata.get("namespace", "")
        if not metadata.get("name"):
            metadata["name"] = self.generate_name(resource, namespace, metadata.get("generateName", ""))
        key = (namespace, metadata["name"])
        if key in self._objects.get(resource, {}):
            raise already_exists(resource, metadata["name"])
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = now_rfc3339()
        return self._commit(resource, key, "ADDED", obj, None)

    def update(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        metadata = obj["metadata"]
        key = (metadata.get("namespace", ""), metadata["name"])
        prev = self._objects.get(resource, {}).get(key)
        if prev is None:
            raise not_found(resource, metadata["name"])
        return self._commit(resource, key, "MODIFIED", obj, prev)

    def remove(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        prev = self.get(resource, namespace, name)
        final = copy.deepcopy(prev)
        return self._commit(resource, (namespace, name), "DELETED", final, prev)

    def generate_name(self, resource: str, namespace: str, prefix: str) -> str:
        taken = self._objects.get(resource, {})
        while True:
            name = prefix + "".join(random.choices(_GENERATE_ALPHABET, k=5))  # noqa: S311 - not a secret
            if (namespace, name) not in taken:
                return name

    @property
    def in_dry_run(self) -> bool:
        return self._dry_run

    @contextlib.contextmanager
    def dry_run(self, enabled: bool = True) -> Iterator[None]:
        """Within this block (if ``enabled``), writes answer what they would store and store nothing."""
        before = self._dry_run
        self._dry_run = before or enabled
        try:
            yield
        finally:
            self._dry_run = before

    def _commit(
        self, resource: str, key: Key, kind: str, obj: dict[str, Any], prev: dict[str, Any] | None
    ) -> dict[str, Any]:
        if self._dry_run:
            # A new object has no resourceVersion yet; a changed or deleted one keeps the one it had.
            return obj
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)
        objects = self._objects.setdefault(resource, {})
        if kind == "DELETED":
            del objects[key]
        else:
            objects[key] = obj
        if len(self._history) == self._history.maxlen:
            self.compacted = self._history[0].rv
        change = Change(self.revision, kind, resource, key, obj, prev)
        self._history.append(change)
        for subscription in self._subscriptions:
            event = subscription.event_for(change)
            if event is not None:
                subscription.queue.put_nowait(event)
        for listener in self._listeners:
            listener(change)
        return obj

    def compact(self) -> None:
        """Forget the whole history, as etcd compaction does: every older revision now answers 410."""
        if self._history:
            self.compacted = self._history[-1].rv
        self._history.clear()

    # --- watching ------------------------------------------------------------------------

    def subscribe(
        self,
        resource: str,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        since: int | None,
    ) -> Subscription:
        """Open a watch. ``since=None`` starts with a synthetic ADDED for every current object."""
        subscription = Subscription(resource, namespace, labels, fields)
        if since is None:
            for obj in self._sorted(self.items(resource, namespace)):
                if subscription._passes(obj):
                    subscription.queue.put_nowait({"type": "ADDED", "object": obj})
        else:
            for change in self.changes_since(since):
                event = subscription.event_for(change)
                if event is not None:
                    subscription.queue.put_nowait(event)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def close_all_watches(self) -> None:
        for subscription in self._subscriptions:
            subscription.queue.put_nowait(None)
        self._subscriptions.clear()

    def add_listener(self, listener: Callable[[Change], None]) -> None:
        """In-process observers (the kubelet, quota accounting) see every change as it is committed."""
        self._listeners.append(listener)

    @staticmethod
    def _sorted(objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(objects, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
