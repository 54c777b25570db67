"""The embedded pod launcher: Kubernetes-routed tasks, each in a pod of its own."""
