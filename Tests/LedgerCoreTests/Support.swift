import LedgerCore

/// The description of the `InputError` that `body` throws, or nil when it returns normally; lets a
/// table-driven test compare the exact message a user would see.
func thrownDescription<Value>(_ body: () throws(InputError) -> Value) -> String? {
    do {
        _ = try body()
        return nil
    } catch {
        return error.description
    }
}

/// The text with every `"\n"` turned into `"\r\n"` and a byte-order mark in front, the way some
/// Windows editors save files; parsers must read it exactly like the original.
func windowsText(_ text: String) -> String {
    "\u{FEFF}" + text.replacing("\n", with: "\r\n")
}

/// A test-only reader for the YAML subset the cluster configs use: `key: value` lines, nesting by
/// indentation, `#` comments. It builds the `ConfigNode` tree Yams would give, so the pure validator
/// can be tested without YAML; the LedgerStore tests check the real Yams path.
func configTree(_ text: String) -> ConfigNode {
    struct Frame {
        var indentation: Int
        var key: String
        var keyLine: Int
        var entries: [ConfigEntry] = []
    }
    func node(of frame: Frame) -> ConfigNode {
        guard let first = frame.entries.first else { return .scalar("", line: frame.keyLine) }
        return .mapping(frame.entries, line: first.keyLine)
    }
    var stack = [Frame(indentation: -1, key: "", keyLine: 1)]
    func close(above indentation: Int) {
        while stack.count > 1, let last = stack.last, last.indentation >= indentation {
            stack.removeLast()
            stack[stack.count - 1].entries.append(
                ConfigEntry(key: last.key, keyLine: last.keyLine, value: node(of: last)))
        }
    }
    for (offset, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        let content = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
        guard content.contains(where: { !$0.isWhitespace }) else { continue }
        let indentation = content.prefix { $0 == " " }.count
        close(above: indentation)
        let parts = content.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        let key = String(parts[0].drop { $0 == " " })
        let value = parts.count > 1 ? String(parts[1].drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()) : ""
        if value.isEmpty {
            stack.append(Frame(indentation: indentation, key: key, keyLine: offset + 1))
        } else {
            stack[stack.count - 1].entries.append(
                ConfigEntry(key: key, keyLine: offset + 1, value: .scalar(value, line: offset + 1)))
        }
    }
    close(above: 0)
    return node(of: stack[0])
}
