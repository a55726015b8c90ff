"""The cluster kit: a real control plane built from upstream and a test kubelet, for the
``tests/cluster`` tier and the bench rows that need a real API server. No pytest inside."""
