"""Models across the cluster: where a model comes from (``sources``), the node's content-addressed model
cache with its ledger records (``store``), and the signed links neighbours fetch artifacts with (``links``)."""
