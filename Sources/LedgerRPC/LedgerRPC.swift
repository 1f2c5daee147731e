/// The wire layer: `.proto` files (the source of truth), the generated Swift code and the conversions
/// between wire messages and `LedgerCore` / `Paxos` values. The gRPC services arrive with the replica
/// runtime; until then this module only fixes its place in the dependency graph.
public enum LedgerRPC {
    /// Version of the wire protocol; a node refuses peers that speak another one.
    public static let protocolVersion = 1
}
