"""The in-memory store, one module per role of batchgate.store.port."""
