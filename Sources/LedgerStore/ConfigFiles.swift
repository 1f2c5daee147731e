import Foundation
import LedgerCore
import Yams

/// Reads the ledger's input files from disk and hands their text to the pure parsers of LedgerCore.
///
/// Every function names the file exactly as the caller gave the path, and every failure is an
/// `InputError`: a missing, unreadable or non-UTF-8 file, a YAML syntax error (with its line), or
/// whatever the parser refuses. Nothing here changes any state.
public enum ConfigFiles {
    /// The text of the file at `path`; refuses a missing file, a directory and bytes that are not UTF-8.
    public static func readText(path: String) throws(InputError) -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw InputError(source: path, message: "no such file; check the path")
        }
        if isDirectory.boolValue {
            throw InputError(source: path, message: "is a directory; expected a file")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw InputError(source: path, message: "cannot be read; check its permissions")
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw InputError(
                source: path, line: lineOfFirstInvalidByte(data),
                message: "the file is not UTF-8 text; save it as UTF-8")
        }
        return text
    }

    /// The 1-based line holding the first byte that is not valid UTF-8.
    static func lineOfFirstInvalidByte(_ data: Data) -> Int {
        var line = 1
        var bytes = data.makeIterator()
        var decoder = UTF8()
        while case .scalarValue(let scalar) = decoder.decode(&bytes) {
            if scalar == "\n" { line += 1 }
        }
        return line
    }

    /// Reads and validates a cluster config like `configs/C1.yaml`.
    public static func loadCluster(path: String) throws(InputError) -> ClusterConfig {
        try parseCluster(yaml: try readText(path: path), source: path)
    }

    /// Validates cluster-config YAML text; `source` names it in errors.
    public static func parseCluster(yaml text: String, source: String) throws(InputError) -> ClusterConfig {
        try ClusterConfig.validate(try configTree(yaml: text, source: source), source: source)
    }

    /// Reads and parses a hosts file like `configs/hosts.ini`.
    public static func loadHosts(path: String) throws(InputError) -> HostsFile {
        try HostsFile.parse(try readText(path: path), source: path)
    }

    /// Reads and parses a shard map like `tests-data/shards.csv`.
    public static func loadShards(path: String) throws(InputError) -> ShardMap {
        try ShardMap.parse(try readText(path: path), source: path)
    }

    /// Reads and parses a test file like `tests-data/tests.csv`.
    public static func loadTestSets(path: String) throws(InputError) -> TestSetFile {
        try TestSetFile.parse(try readText(path: path), source: path)
    }

    /// The YAML text as a `ConfigNode` tree, with the line of every node; YAML syntax errors,
    /// duplicate keys, aliases and non-scalar keys are refused with their line.
    public static func configTree(yaml text: String, source: String) throws(InputError) -> ConfigNode {
        var yaml = text
        if yaml.unicodeScalars.first == "\u{FEFF}" {
            yaml = String(yaml.unicodeScalars.dropFirst())
        }
        let root: Node?
        do {
            // The encoding is explicit: the default one consults an environment variable and prints.
            root = try Parser(yaml: yaml, resolver: .default, constructor: .default, encoding: .utf8).singleRoot()
        } catch let error as YamlError {
            throw inputError(error, yaml: yaml, source: source)
        } catch {
            throw InputError(source: source, message: "is not valid YAML: \(error)")
        }
        guard let root else {
            throw InputError(source: source, message: "the file is empty; expected settings, like cluster: C1")
        }
        return try configNode(root, source: source)
    }

    static func configNode(_ node: Node, source: String) throws(InputError) -> ConfigNode {
        let line = node.mark?.line ?? 1
        switch node {
        case .scalar(let scalar):
            // `key:`, `key: ~` and `key: null` all mean "no value"; a quoted "null" stays text.
            return .scalar(node.tag.rawValue == Tag.Name.null.rawValue ? "" : scalar.string, line: line)
        case .mapping(let mapping):
            var entries: [ConfigEntry] = []
            for (key, value) in mapping {
                guard case .scalar(let keyScalar) = key else {
                    throw InputError(
                        source: source, line: key.mark?.line ?? line,
                        message: "a key is a mapping or a list; keys are plain words, like cluster")
                }
                entries.append(
                    ConfigEntry(
                        key: keyScalar.string, keyLine: key.mark?.line ?? line,
                        value: try configNode(value, source: source)))
            }
            return .mapping(entries, line: line)
        case .sequence(let sequence):
            var items: [ConfigNode] = []
            for item in sequence {
                items.append(try configNode(item, source: source))
            }
            return .sequence(items, line: line)
        case .alias:
            throw InputError(
                source: source, line: line, message: "YAML aliases (*name) are not supported; write the value out")
        }
    }

    static func inputError(_ error: YamlError, yaml: String, source: String) -> InputError {
        func syntax(_ problem: String, _ mark: Mark, _ context: YamlError.Context?) -> InputError {
            var message = "not valid YAML: \(problem)"
            if let context {
                message += " (\(context.text) at line \(context.mark.line))"
            }
            return InputError(source: source, line: mark.line, message: message)
        }
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            return syntax(problem, mark, context)
        case .reader(let problem, let offset, _, _):
            let line = offset.map { offset in
                1 + yaml.prefix(offset).reduce(0) { count, character in character.isNewline ? count + 1 : count }
            }
            return InputError(source: source, line: line, message: "not valid YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let key = duplicates.first ?? ""
            let first = context.mark
            if let second = lineOfRepeatedKey(key, after: first, yaml: yaml) {
                return InputError(
                    source: source, line: second, message: "duplicate key \"\(key)\" (first at line \(first.line))")
            }
            return InputError(source: source, line: first.line, message: "duplicate key \"\(key)\"")
        default:
            return InputError(source: source, message: "is not valid YAML: \(error)")
        }
    }

    /// The line where `key` is written again at the same indentation as at `first`, if it can be found;
    /// Yams reports only the first occurrence of a duplicate key, but the repeat is the line to fix.
    static func lineOfRepeatedKey(_ key: String, after first: Mark, yaml: String) -> Int? {
        let lines = yaml.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        guard first.line >= 1, first.line < lines.count else { return nil }
        for index in first.line..<lines.count {
            let text = lines[index]
            let indentation = text.unicodeScalars.prefix { $0 == " " || $0 == "-" }.count
            guard indentation == first.column - 1 else { continue }
            let rest = Substring(text.unicodeScalars.dropFirst(indentation))
            guard rest.hasPrefix(key) else { continue }
            if rest.dropFirst(key.count).drop(while: { $0 == " " }).first == ":" {
                return index + 1
            }
        }
        return nil
    }
}
