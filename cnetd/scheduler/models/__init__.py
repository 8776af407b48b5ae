"""Models on this node: the content-addressed cache with its ledger records (``store``) and what a
deployment asks of it (``deploy``)."""
