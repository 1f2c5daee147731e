/// The client library: routing by the shard catalog, transfers, the 2PC driver, the test-set runner and
/// the load generator. It starts with the file inputs it reads; the network parts arrive with the client work.
public enum LedgerClient {}
