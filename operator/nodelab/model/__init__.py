"""The lab model both runtimes share: the NodeLab spec and its validation (the CRD's schema and
rules), quantities, names, the capacity model and the status vocabulary (conditions, history,
prediction). No Kubernetes client and no processes here."""
