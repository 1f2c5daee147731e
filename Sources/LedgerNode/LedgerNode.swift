/// The replica runtime: the actor shell that drives the pure `Paxos` core and the ledger state machine,
/// persists through `LedgerStore` and talks over `LedgerRPC`. Its first piece is configuration checking
/// at start-up; the replica process itself arrives with the replica-node work.
public enum LedgerNode {}
