"""The HTTP face of the local API: URL and query parsing, JSON and watch streams, fault application.

Everything here is transport; what a verb means lives in ``cluster`` and ``store``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
import struct
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hybrid_executor.testing.kube.authorization import (
    REVIEW_PATH,
    Authorizer,
    forbidden_error,
    request_attributes,
    review_access,
)
from hybrid_executor.testing.kube.cluster import Cluster
from hybrid_executor.testing.kube.decoding import decode
from hybrid_executor.testing.kube.deleting import read_delete_options
from hybrid_executor.testing.kube.discovery import DISCOVERY
from hybrid_executor.testing.kube.errors import ApiError, bad_request, method_not_allowed, too_old_resource_version
from hybrid_executor.testing.kube.faults import Decision, FaultInjector
from hybrid_executor.testing.kube.kinds import KINDS, NAMESPACED
from hybrid_executor.testing.kube.listing import parse_revision
from hybrid_executor.testing.kube.logrequests import Budget, log_container, log_line, log_options, not_started_message
from hybrid_executor.testing.kube.patching import patch_media_type
from hybrid_executor.testing.kube.routing import Target, dry_run, parse_target, query_flag, verb_of
from hybrid_executor.testing.kube.selectors import parse_field_selector, parse_label_selector

if TYPE_CHECKING:
    from hybrid_executor.testing.kube.kubelet import Kubelet

log = logging.getLogger(__name__)

_GONE_POLL = 1.0  # seconds: how often an idle stream checks that its client is still there


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=_dumps(obj), status=status, content_type="application/json")


def error_response(error: ApiError) -> web.Response:
    if error.plain_text:
        response = web.Response(text=error.message + "\n", status=error.code, content_type="text/plain")
        response.headers["X-Content-Type-Options"] = "nosniff"
    else:
        response = json_response(error.status(), error.code)
    response.headers.update(error.headers)
    return response


def not_found_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


class ApiHttp:
    """aiohttp handlers over one Cluster; counts requests per (verb, resource) for inspection."""

    def __init__(
        self,
        cluster: Cluster,
        faults: FaultInjector,
        kubelet: Kubelet | None = None,
        bookmark_interval: float = 5.0,
        authorizer: Authorizer | None = None,
    ) -> None:
        self.cluster = cluster
        self.store = cluster.store
        self.faults = faults
        self.authorizer = authorizer or Authorizer()
        self.kubelet = kubelet
        self.bookmark_interval = bookmark_interval
        self.requests: Counter[tuple[str, str]] = Counter()
        # The DeleteOptions of each delete request, as decoded (for tests to see what a client sent).
        self.delete_options: list[dict[str, Any]] = []
        # Delete calls per object, (resource, namespace, name): whatever they were answered.
        self.deletes: Counter[tuple[str, str, str]] = Counter()
        self._streams: set[asyncio.Event] = set()

    def application(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    def close_streams(self) -> None:
        """End every open watch and follow stream (shutdown)."""
        self.store.close_all_watches()
        for stop in self._streams:
            stop.set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        watch = query_flag(request.query, "watch")
        attributes = request_attributes(request.method, path, request.query, self.authorizer.user, watch)
        discovery = DISCOVERY.get(path.rstrip("/") or path)
        if discovery is not None or path in ("/healthz", "/livez", "/readyz"):
            access = self.authorizer.authorize(attributes)
            if not access.allowed:
                return error_response(forbidden_error(attributes, access.reason))
            return json_response(discovery) if discovery is not None else web.Response(text="ok")
        target = parse_target(path)
        review = path == REVIEW_PATH
        label = target.label if target else ("selfsubjectaccessreviews" if review else "")
        verb = verb_of(request.method, target, request.query)
        self.requests[(verb, label or path)] += 1
        if verb == "delete" and target is not None and target.name is not None and not target.subresource:
            self.deletes[(target.resource, target.namespace or "", target.name)] += 1
        decision = self.faults.decide(verb, label, path)
        if decision.latency:
            await asyncio.sleep(decision.latency)
        if decision.reset and decision.watch_close_after_events is None and decision.watch_close_after_seconds is None:
            _reset(request)
            return web.Response(status=500)
        if decision.error is not None:
            return error_response(decision.error)
        # The authorization filter runs before routing: a denied request is 403 even where 404 would be.
        access = self.authorizer.authorize(attributes)
        if not access.allowed:
            return error_response(forbidden_error(attributes, access.reason))
        if target is None and not review:
            return error_response(not_found_path())
        try:
            if target is None:
                response = await self._review(request)
            else:
                response = await self._dispatch(request, target, verb, decision)
        except ApiError as error:
            response = error_response(error)
        except ConnectionResetError:
            # The client went away while its body was read (kube-apiserver's readBody failing): the
            # request does nothing and its error reaches no one. Not a handler crash.
            log.debug("client gone during %s %s", request.method, path)
            return error_response(ApiError(500, "InternalError", "Internal error occurred: connection lost", {}))
        except Exception as error:
            # As the real server does with a panic in a handler: a Status, and the trace in its own log.
            log.exception("internal error serving %s %s", request.method, path)
            return error_response(ApiError(500, "InternalError", f"Internal error occurred: {error!r}", {}))
        if decision.reset_after_apply and not response.prepared:
            # Applied and stored; the answer is lost with the connection.
            _reset(request)
            return web.Response(status=500)
        return response

    async def _dispatch(
        self, request: web.Request, target: Target, verb: str, decision: Decision
    ) -> web.StreamResponse:
        namespace = target.namespace
        if target.resource in NAMESPACED and namespace is None and verb not in ("list", "watch"):
            raise method_not_allowed(request.method)
        if verb == "watch":
            return await self._watch(request, target, decision)
        if verb == "list":
            return json_response(self._list(request, target))
        if target.subresource == "log":
            if verb != "get":
                raise method_not_allowed(request.method)
            return await self._log(request, target)
        if verb == "create":
            if target.name is not None:
                raise method_not_allowed(request.method)
            raw = await request.read()
            dry = dry_run(request.query.getall("dryRun", []), "CreateOptions")  # before the body is decoded
            body = decode(raw, target.resource)
            return json_response(self.cluster.create(target.resource, namespace or "", body, dry_run=dry), 201)
        if verb == "deletecollection":
            return json_response(await self._delete_collection(request, target))
        if target.name is None:
            raise method_not_allowed(request.method)
        ns = namespace or ""
        if verb == "get":
            return json_response(self.store.get(target.resource, ns, target.name))
        if verb == "delete":
            options = await self._delete_options(request)
            dry = bool(options.pop("dryRun"))  # validated with the rest of the options
            return json_response(self.cluster.delete(target.resource, ns, target.name, options, dry_run=dry))
        if verb == "patch":
            content_type = request.headers.get("Content-Type", "")
            patch_media_type(content_type)  # 415 comes before everything else
            patch = await request.read()
            dry = dry_run(request.query.getall("dryRun", []), "PatchOptions")
            updated = self.cluster.patch(
                target.resource, ns, target.name, content_type, patch, target.subresource, dry_run=dry
            )
            return json_response(updated)
        if verb == "update":
            raw = await request.read()
            dry = dry_run(request.query.getall("dryRun", []), "UpdateOptions")
            body = decode(raw, target.resource)
            return json_response(
                self.cluster.replace(target.resource, ns, target.name, body, target.subresource, dry_run=dry)
            )
        raise method_not_allowed(request.method)

    async def _review(self, request: web.Request) -> web.StreamResponse:
        """POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews (create is its only verb)."""
        if request.method != "POST":
            raise method_not_allowed(request.method)
        raw = await request.read()
        dry_run(request.query.getall("dryRun", []), "CreateOptions")  # a review stores nothing either way
        return json_response(review_access(raw, self.authorizer), 201)

    def _list(self, request: web.Request, target: Target) -> dict[str, Any]:
        query = request.query
        limit_text = query.get("limit", "0") or "0"
        try:
            limit = int(limit_text)
        except ValueError:
            raise bad_request(f"invalid limit: {limit_text!r}") from None
        return self.cluster.list(
            target.resource,
            target.namespace,
            parse_label_selector(query.get("labelSelector")),
            parse_field_selector(query.get("fieldSelector"), target.resource),
            limit=max(0, limit),
            continue_token=query.get("continue", ""),
            resource_version=query.get("resourceVersion"),
            resource_version_match=query.get("resourceVersionMatch"),
        )

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        """The request's DeleteOptions (``deleting.read_delete_options``), recorded for tests to see."""
        options = read_delete_options(await request.read(), request.query)
        self.delete_options.append({key: value for key, value in options.items() if key != "dryRun" or value})
        if options.get("gracePeriodSeconds") is not None and options["gracePeriodSeconds"] < 0:
            options["gracePeriodSeconds"] = 1  # what the pod strategy makes of a negative period
        return options

    async def _delete_collection(self, request: web.Request, target: Target) -> dict[str, Any]:
        if target.resource == "namespaces":
            raise method_not_allowed("DELETE")
        options = await self._delete_options(request)
        dry = bool(options.pop("dryRun"))
        listed = self._list(request, target)
        deleted = []
        for item in listed["items"]:
            name = item["metadata"]["name"]
            if self.store.find(target.resource, target.namespace or "", name) is not None:
                namespace = target.namespace or ""
                deleted.append(self.cluster.delete(target.resource, namespace, name, options, dry_run=dry))
        listed["items"] = deleted
        listed["metadata"] = {"resourceVersion": str(self.store.revision)}
        return listed

    async def _watch(self, request: web.Request, target: Target, decision: Decision) -> web.StreamResponse:
        query = request.query
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"), target.resource)
        since = parse_revision(query.get("resourceVersion"))
        timeout_text = query.get("timeoutSeconds")
        # Without timeoutSeconds the real server ends a watch after a random 30 to 60 minutes.
        try:
            timeout = float(timeout_text) if timeout_text else random.uniform(1800, 3600)  # noqa: S311
        except ValueError:
            raise bad_request(f"invalid timeoutSeconds: {timeout_text!r}: must be a whole number of seconds") from None
        if decision.watch_close_after_seconds is not None:
            timeout = min(timeout, decision.watch_close_after_seconds)
        bookmarks = query_flag(query, "allowWatchBookmarks")
        namespace = target.namespace if target.resource != "namespaces" else None
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            if decision.watch_expired:
                # As if etcd had just compacted up to now; the oldest kept is past the one asked for.
                requested = since or 0
                raise too_old_resource_version(requested, max(self.store.revision, requested + 1))
            subscription = self.store.subscribe(target.resource, namespace, labels, fields, since)
        except ApiError as error:
            with contextlib.suppress(ConnectionResetError):
                await response.write(_dumps({"type": "ERROR", "object": error.status()}) + b"\n")
            await _end(response)
            return response
        kind = KINDS[target.resource]
        sent = 0
        deadline = time.monotonic() + timeout
        next_bookmark = time.monotonic() + self.bookmark_interval
        stop = asyncio.Event()
        self._streams.add(stop)
        try:
            while not stop.is_set() and not _client_gone(request):
                now = time.monotonic()
                if now >= deadline:
                    break
                if decision.watch_close_after_events is not None and sent >= decision.watch_close_after_events:
                    break
                # Wake at least every second to notice a client that has gone away: the real server
                # ends the watch (and frees what it holds) as soon as the connection closes.
                wait = min(deadline - now, next_bookmark - now, _GONE_POLL)
                try:
                    event = await asyncio.wait_for(subscription.queue.get(), timeout=max(wait, 0.0))
                except asyncio.TimeoutError:
                    now = time.monotonic()
                    if bookmarks and next_bookmark <= now < deadline:
                        bookmark = {
                            "kind": kind,
                            "apiVersion": "v1",
                            "metadata": {"resourceVersion": str(self.store.revision)},
                        }
                        await response.write(_dumps({"type": "BOOKMARK", "object": bookmark}) + b"\n")
                    if next_bookmark <= now:
                        next_bookmark = now + self.bookmark_interval
                    continue
                if event is None:
                    break
                await response.write(_dumps(event) + b"\n")
                sent += 1
                next_bookmark = time.monotonic() + self.bookmark_interval
        except (ConnectionResetError, asyncio.CancelledError):
            return response
        finally:
            self.store.unsubscribe(subscription)
            self._streams.discard(stop)
        if decision.reset:
            _reset(request)
            return response
        await _end(response)
        return response

    async def _log(self, request: web.Request, target: Target) -> web.StreamResponse:
        assert target.name is not None
        assert target.namespace is not None
        pod = self.store.get("pods", target.namespace, target.name)
        options = log_options(request.query, target.name)
        container = log_container(pod, request.query.get("container"))
        logs = self.kubelet.logs(target.namespace, target.name, container) if self.kubelet else None
        if logs is None or not logs.started:
            raise bad_request(not_started_message(pod, container))
        if options.previous:
            # Containers never restart here, so there is never a previous one to show.
            raise bad_request(f'previous terminated container "{container}" in pod "{target.name}" not found')
        indexes = [i for i, moment in enumerate(logs.times) if options.since is None or moment >= options.since]
        if options.tail is not None:
            indexes = indexes[-options.tail :] if options.tail else []
        budget = Budget(options.limit_bytes)
        chunk = budget.take(b"".join(log_line(logs, i, options.timestamps) for i in indexes))
        if not options.follow:
            return web.Response(body=chunk, content_type="text/plain")
        response = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        stop = asyncio.Event()
        self._streams.add(stop)
        try:
            if chunk:
                await response.write(chunk)
            position = len(logs.lines)
            while not stop.is_set() and not _client_gone(request) and not budget.spent:
                if position < len(logs.lines):
                    end = len(logs.lines)
                    chunk = budget.take(b"".join(log_line(logs, i, options.timestamps) for i in range(position, end)))
                    position = end
                    if chunk:
                        await response.write(chunk)
                    continue
                if logs.finished:
                    break
                await logs.wait_for_more(timeout=0.5)
        except (ConnectionResetError, asyncio.CancelledError):
            return response
        finally:
            self._streams.discard(stop)
        await _end(response)
        return response


def _client_gone(request: web.Request) -> bool:
    """Whether the client has closed the connection (aiohttp drops the transport when it does)."""
    transport = request.transport
    return transport is None or transport.is_closing()


async def _end(response: web.StreamResponse) -> None:
    """Finish a streamed answer; a client that has already gone away needs no ending."""
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()


def _reset(request: web.Request) -> None:
    """Drop the connection with a TCP reset, as a crashed or restarted API server would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
