"""LMDB resource ledger: node capacity, allocations and workload records shared by every node process."""
