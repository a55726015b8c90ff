"""The Kubernetes runtime: kopf handlers (``handlers``), the pure reconcile decision
(``reconcile``), the child objects' builders (``builders``) and readers (``children``), the API
client (``cluster_api``), the operator's settings and entry point (``main``)."""
