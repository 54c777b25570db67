"""``[core] hostname_callable`` for the demo's worker pods: the container's hostname, i.e. its pod name.

In a real cluster a task in a pod finds its pod's name with ``socket.getfqdn()``, because the
container has a UTS namespace of its own. The local kubelet runs containers as host processes, so
that would name the host; the kubelet sets ``HOSTNAME`` to the pod name (as containerd does), and
this callable reports it, so Airflow records where each task really ran.
"""

from __future__ import annotations

import os
import socket


def container_hostname() -> str:
    return os.environ.get("HOSTNAME") or socket.getfqdn()
