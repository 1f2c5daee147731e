/// Adapters over files and SQLite.
public enum LedgerStoreModule {}
