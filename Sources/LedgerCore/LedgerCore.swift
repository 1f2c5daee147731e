/// The pure core of the ledger: values in, values out, with no clock, randomness, I/O or logging.
///
/// So far it holds the file formats (`Formats/`): account ids, amounts and transfers as users write
/// them, and parsers for hosts.ini, cluster configs (over a YAML-free `ConfigNode` tree), shards.csv
/// and test-set files. Every parser takes the file's text and name and either returns a value whose
/// invariants hold or throws one `InputError` that names the file, the line and what was expected.
public enum LedgerCoreModule {}
