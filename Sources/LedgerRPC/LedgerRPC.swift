/// The wire layer: `Protos/ledger.proto` (the source of truth), the Swift code generated from it (in `Generated/`,
/// committed; `scripts/generate-protos.sh` regenerates it) and the conversions between wire messages and
/// `LedgerCore` / `Paxos` values.
///
/// Encoding is `Ledger_V1_X(value)`; decoding is `Value(wire: message)`, which throws a `WireError` naming the field
/// for input that breaks a rule of the protocol (see `WireLimits` for the bounds on repeated fields).
public enum LedgerRPC {
    /// Version of the wire protocol; a node refuses peers that speak another one. Version 2 carries slot values
    /// between replicas in `LedgerCodec`'s format instead of nested messages; version 3 (`LedgerCodec` format 3)
    /// carries the whole transfer in a cross-shard prepare and the replicas' own decisions (`decide_commit`, `follow`).
    /// Version 5 carries membership changes: reconfiguration slots, the configurations in `Phase1b` and snapshots,
    /// the acceptor's chosen prefix in `Phase1b` and `Phase2b`, and `Handover`.
    public static let protocolVersion = 5
}
