/// A configuration file's tree, independent of YAML: what a YAML loader hands to the pure validator.
///
/// Invariants: every `line` is 1-based; a scalar holds its text as written (an empty or null value
/// is `""`); a mapping keeps its entries in file order, duplicates included, so that the validator
/// can name both lines of a duplicate key.
public enum ConfigNode: Sendable, Equatable {
    /// A single value, like `3`, `info` or `1000ms`.
    case scalar(String, line: Int)
    /// Keys and values, in file order; `line` is where the mapping starts.
    case mapping([ConfigEntry], line: Int)
    /// A list of values; `line` is where the list starts.
    case sequence([ConfigNode], line: Int)

    /// The 1-based line where this node starts.
    public var line: Int {
        switch self {
        case .scalar(_, let line), .mapping(_, let line), .sequence(_, let line):
            return line
        }
    }
}

/// One `key: value` of a mapping, with the line of the key.
///
/// Invariant: `keyLine` is 1-based.
public struct ConfigEntry: Sendable, Equatable {
    public var key: String
    public var keyLine: Int
    public var value: ConfigNode

    public init(key: String, keyLine: Int, value: ConfigNode) {
        self.key = key
        self.keyLine = keyLine
        self.value = value
    }
}
