"""Deployments of replicas: the decisions (``decide``, pure) and their owner (``controller``)."""
