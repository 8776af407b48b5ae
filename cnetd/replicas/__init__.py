"""Replicated deployments: one model deployment, N service instances across the cluster, one endpoint."""
