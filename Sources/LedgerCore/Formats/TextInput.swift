/// One line of a text file: its 1-based number and its text without the line ending.
///
/// Invariant: `text` contains no `"\n"` or `"\r"`.
struct NumberedLine: Sendable, Equatable {
    var number: Int
    var text: Substring
}

/// The text handling every parser shares, so that a byte-order mark, CRLF line endings and
/// stray spaces mean the same thing in every file format.
enum TextInput {
    /// The text without a leading UTF-8 byte-order mark (U+FEFF), which some editors write.
    static func withoutByteOrderMark(_ text: String) -> Substring {
        let all = Substring(text)
        if all.unicodeScalars.first == "\u{FEFF}" {
            return Substring(all.unicodeScalars.dropFirst())
        }
        return all
    }

    /// The lines of `text`, numbered from 1. `"\r\n"`, `"\n"` and a lone `"\r"` each end a line.
    static func lines(_ text: String) -> [NumberedLine] {
        // Swift treats "\r\n" as one Character, so splitting on Characters never leaves a stray "\r".
        let parts = withoutByteOrderMark(text).split(
            omittingEmptySubsequences: false,
            whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }
        )
        return parts.enumerated().map { NumberedLine(number: $0.offset + 1, text: $0.element) }
    }

    /// `text` without leading and trailing whitespace.
    static func trimmed(_ text: Substring) -> Substring {
        guard let first = text.firstIndex(where: { !$0.isWhitespace }),
            let last = text.lastIndex(where: { !$0.isWhitespace })
        else {
            return text[text.endIndex...]
        }
        return text[first...last]
    }

    /// `text` without leading and trailing whitespace.
    static func trimmed(_ text: String) -> Substring {
        trimmed(Substring(text))
    }

    /// Whether `text` is one or more ASCII digits and nothing else.
    static func isDigits(_ text: Substring) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    /// The value of an unsigned decimal number made of ASCII digits only, or nil when `text` is
    /// not digits or the value exceeds `UInt64.max`.
    static func unsignedValue(_ text: Substring) -> UInt64? {
        guard isDigits(text) else { return nil }
        var value: UInt64 = 0
        for byte in text.utf8 {
            let (times10, overflowTimes) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflowSum) = times10.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
            if overflowTimes || overflowSum { return nil }
            value = sum
        }
        return value
    }

    /// The number `n` of a name written `<prefix><n>` (like `S12` or `C3`), where `n` starts at 1
    /// and has no leading zero; nil for anything else.
    static func nameNumber(_ text: Substring, prefix: String) -> Int? {
        guard text.hasPrefix(prefix) else { return nil }
        let digits = text.dropFirst(prefix.count)
        guard isDigits(digits), digits.count <= String(nameNumberMax).count, digits.first != "0",
            let value = Int(digits)
        else {
            return nil
        }
        return value
    }

    /// The largest `n` of a name `<prefix><n>` or of a set number: six digits are far more replicas,
    /// clusters, shards or test sets than any deployment has, and keep index arithmetic far from overflow.
    static let nameNumberMax = 999_999

    /// `items` as English: `"S1"`, `"S1 and S2"`, `"S1, S2 and S3"`.
    static func list(_ items: [String]) -> String {
        switch items.count {
        case 0: return "none"
        case 1: return items[0]
        default: return items.dropLast().joined(separator: ", ") + " and " + items[items.count - 1]
        }
    }
}

/// One record of a CSV file: its fields, with the spaces around them removed, and the line it starts on.
///
/// Invariant: `fields` is never empty; a record never stands for a blank line.
struct CSVRecord: Sendable, Equatable {
    var line: Int
    var fields: [String]
}

/// A small RFC 4180 CSV reader: commas separate fields, double quotes enclose a field that holds
/// commas, quotes (written `""`) or line breaks, spaces around fields are dropped, CRLF, LF and a
/// leading byte-order mark are accepted, and blank lines are skipped.
enum CSVReader {
    /// The records of `text`, without blank lines.
    static func records(_ text: String, source: String) throws(InputError) -> [CSVRecord] {
        // Unicode scalars rather than Characters: a quote followed by a combining mark must still be a quote.
        let scalars = Array(TextInput.withoutByteOrderMark(text).unicodeScalars)
        var records: [CSVRecord] = []
        var fields: [String] = []
        var field = String.UnicodeScalarView()
        var line = 1
        var recordLine = 1
        var quoteLine = 1
        var insideQuotes = false
        var fieldClosed = false
        var recordHasQuote = false

        func endField() {
            let text = String(field)
            fields.append(fieldClosed ? text : String(TextInput.trimmed(text)))
            field = String.UnicodeScalarView()
            fieldClosed = false
        }
        func endRecord() {
            endField()
            let isBlank = fields.count == 1 && fields[0].isEmpty && !recordHasQuote
            if !isBlank {
                records.append(CSVRecord(line: recordLine, fields: fields))
            }
            fields = []
            recordHasQuote = false
        }

        var index = 0
        while index < scalars.count {
            let scalar = scalars[index]
            let next: Unicode.Scalar? = index + 1 < scalars.count ? scalars[index + 1] : nil
            index += 1
            if insideQuotes {
                switch scalar {
                case "\"" where next == "\"":
                    field.append("\"")
                    index += 1
                case "\"":
                    insideQuotes = false
                    fieldClosed = true
                case "\r", "\n":
                    if scalar == "\r" && next == "\n" { index += 1 }
                    field.append("\n")
                    line += 1
                default:
                    field.append(scalar)
                }
                continue
            }
            switch scalar {
            case ",":
                endField()
            case "\r", "\n":
                if scalar == "\r" && next == "\n" { index += 1 }
                endRecord()
                line += 1
                recordLine = line
            case "\"":
                if fieldClosed || !TextInput.trimmed(String(field)).isEmpty {
                    let fieldText = fieldClosed ? "\"\(String(field))\"" : String(TextInput.trimmed(String(field)))
                    throw InputError(
                        source: source, line: line,
                        message:
                            "stray quote after \(fieldText); put quotes around a whole field and write a quote inside "
                            + "it as \"\""
                    )
                }
                field = String.UnicodeScalarView()
                insideQuotes = true
                recordHasQuote = true
                quoteLine = line
            default:
                if fieldClosed {
                    // A quote left open on an earlier line swallows the line break and closes at the next
                    // quote; the missing quote, not the text after it, is what the user must fix.
                    if quoteLine != line && !scalar.properties.isWhitespace {
                        throw InputError(
                            source: source, line: quoteLine,
                            message:
                                "the quote opened on this line closes on line \(line), followed by \"\(scalar)\"; "
                                + "is a closing quote missing on this line?"
                        )
                    }
                    guard scalar.properties.isWhitespace else {
                        throw InputError(
                            source: source, line: line,
                            message:
                                "text \"\(scalar)\" after the closing quote of \"\(String(field))\"; a quoted field "
                                + "ends at its closing quote, before the next comma"
                        )
                    }
                } else {
                    field.append(scalar)
                }
            }
        }
        if insideQuotes {
            throw InputError(
                source: source, line: quoteLine,
                message: "the quote opened on this line is never closed; end the field with another \""
            )
        }
        endRecord()
        return records
    }
}
