import Foundation
import Paxos
import Testing

/// A small deterministic mutation fuzzer: every input of a run follows from the seed, the surface and the
/// iteration, so a failure printed with its seed and iteration is replayed exactly with
/// `FUZZ_SEED=<seed> FUZZ_ITERATIONS=<iteration + 1> swift test --filter FuzzTests`.
///
/// `FUZZ_ITERATIONS` (default `defaultIterations`) is the number of inputs per surface, `FUZZ_SEED` (default 1) the
/// seed of the run.
enum FuzzSettings {
    static let defaultIterations = 300

    static var iterations: Int {
        ProcessInfo.processInfo.environment["FUZZ_ITERATIONS"].flatMap { Int($0) }.map { max($0, 1) }
            ?? defaultIterations
    }

    static var seed: UInt64 {
        ProcessInfo.processInfo.environment["FUZZ_SEED"].flatMap { UInt64($0) } ?? 1
    }

    /// The package directory: this file is `<package>/Tests/FuzzTests/Fuzzer.swift`.
    static let packageDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The text of a file shipped with the repository, like `configs/hosts.ini`.
    static func shipped(_ relative: String) -> String {
        (try? String(contentsOf: packageDirectory.appendingPathComponent(relative), encoding: .utf8)) ?? ""
    }
}

/// What a surface did with one input.
enum Verdict: Equatable {
    /// The input was valid, and what the surface returned keeps its invariants.
    case accepted
    /// The input was refused with an error that says what and where.
    case refused
    /// A promise was broken: the text says which.
    case failed(String)
}

/// The random choices of one input, and the mutation operators built on them.
struct Mutator {
    var random: SeededRandom

    init(seed: UInt64, surface: String, iteration: Int) {
        // FNV-1a of the surface name, so each surface explores its own sequence under one seed.
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in surface.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        var mixer = SeededRandom(seed: seed ^ hash)
        random = SeededRandom(seed: mixer.next() &+ UInt64(iteration) &* 0x9E37_79B9_7F4A_7C15)
    }

    /// A number in `0..<bound` (`bound >= 1`).
    mutating func below(_ bound: Int) -> Int {
        Int(random.next() % UInt64(max(bound, 1)))
    }

    /// True `percent` times in 100.
    mutating func chance(_ percent: Int) -> Bool {
        below(100) < percent
    }

    mutating func pick<Element>(_ elements: [Element]) -> Element {
        elements[below(elements.count)]
    }

    /// The largest input a mutation makes, so a run stays fast and bounded in memory.
    static let sizeMax = 64 * 1024

    /// Text that often breaks parsers: separators of every format, signs, overflowing and odd numbers, unicode,
    /// control characters and line breaks of every kind.
    static let tokens: [String] = [
        "-", ":", ",", "{", "}", "[", "]", "(", ")", "#", "\"", "'", "\n", "\r\n", "\r", " ", "\t", "\0",
        "0", "1", "-1", "-0", "+1", "007", "65535", "65536", "999999", "1000000", "4294967296",
        "9223372036854775807", "9223372036854775808", "18446744073709551615", "18446744073709551616",
        String(repeating: "9", count: 400), "1.5", ".000000", "1e9", "0x10", "S", "C", "D", "EC", "S0", "S1",
        "S999999", "S1000000", "C1", "C2", "all", "client", "localhost", "[::1]", "move", "from", "to",
        "clusters", "accounts", "transactions", "total", "printbalance", "print logs", "PrintDatastore",
        "\u{FEFF}", "\u{85}", "\u{2028}", "\u{2029}", "\u{0B}", "\u{0C}", "\u{7F}", "\u{301}", "\u{200B}", "é",
        "Zürich", "日本", "🏦", "\u{FFFD}", "*a", "&a", "!!str", "~", "null", "---", "...", "|", ">", "? ", "- ",
        "%YAML 1.2", "true", "no", "0o17", ".inf", "ms", "1000ms", "3600001ms", "s",
    ]

    /// Bytes of every interesting kind: boundaries of varints and UTF-8, and the values of every tag.
    static let interestingBytes: [UInt8] = [0, 1, 2, 3, 7, 8, 9, 0x7F, 0x80, 0x81, 0xBF, 0xC0, 0xFE, 0xFF]

    // MARK: - Bytes

    /// `bytes` changed by one to four stacked operations; `corpus` gives material to splice in.
    mutating func mutate(bytes original: [UInt8], corpus: [[UInt8]]) -> [UInt8] {
        var bytes = original
        for _ in 0..<(1 + below(4)) {
            mutateOnce(&bytes, corpus: corpus)
        }
        if bytes.count > Self.sizeMax { bytes.removeLast(bytes.count - Self.sizeMax) }
        return bytes
    }

    private mutating func mutateOnce(_ bytes: inout [UInt8], corpus: [[UInt8]]) {
        let position = below(bytes.count + 1)
        switch below(10) {
        case 0 where !bytes.isEmpty:  // flip a bit
            let index = below(bytes.count)
            bytes[index] ^= 1 << UInt8(below(8))
        case 1 where !bytes.isEmpty:  // set an interesting byte
            bytes[below(bytes.count)] = pick(Self.interestingBytes)
        case 2:  // insert random bytes
            let count = 1 + below(8)
            bytes.insert(contentsOf: (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }, at: position)
        case 3 where !bytes.isEmpty:  // delete a run
            let count = min(1 + below(16), bytes.count - min(position, bytes.count - 1))
            let start = min(position, bytes.count - 1)
            bytes.removeSubrange(start..<(start + count))
        case 4 where !bytes.isEmpty:  // duplicate a run
            let start = below(bytes.count)
            let count = min(1 + below(32), bytes.count - start)
            bytes.insert(contentsOf: bytes[start..<(start + count)], at: position)
        case 5 where !corpus.isEmpty:  // splice: our head, another entry's tail
            let other = pick(corpus)
            let cut = below(other.count + 1)
            bytes = Array(bytes[..<min(position, bytes.count)]) + other[cut...]
        case 6 where !bytes.isEmpty:  // truncate
            bytes.removeLast(bytes.count - below(bytes.count))
        case 7:  // insert a token's bytes
            bytes.insert(contentsOf: Array(pick(Self.tokens).utf8), at: position)
        case 8 where !bytes.isEmpty:  // a huge repeat of one run, bounded
            let start = below(bytes.count)
            let run = bytes[start..<min(bytes.count, start + 1 + below(4))]
            let times = 1 + below(2_000)
            bytes.insert(contentsOf: Array(repeating: Array(run), count: times).joined(), at: position)
        default:  // an interesting varint: 1 to 10 bytes with the continuation bit
            let length = 1 + below(10)
            var varint = (0..<(length - 1)).map { _ in UInt8(truncatingIfNeeded: random.next()) | 0x80 }
            varint.append(pick([0x00, 0x01, 0x7F, 0xFF]))
            bytes.insert(contentsOf: varint, at: position)
        }
    }

    // MARK: - Text

    /// `text` changed by one to four stacked operations on its lines, characters and bytes.
    mutating func mutate(text original: String, corpus: [String]) -> String {
        var text = original
        for _ in 0..<(1 + below(4)) {
            text = mutateOnce(text, corpus: corpus)
        }
        if text.utf8.count > Self.sizeMax {
            text = String(decoding: text.utf8.prefix(Self.sizeMax), as: UTF8.self)
        }
        return text
    }

    private mutating func mutateOnce(_ text: String, corpus: [String]) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        switch below(12) {
        case 0, 1:  // insert a token at a random character
            var characters = Array(text)
            characters.insert(contentsOf: pick(Self.tokens), at: below(characters.count + 1))
            return String(characters)
        case 2:  // replace a run of characters with a token
            var characters = Array(text)
            guard !characters.isEmpty else { return pick(Self.tokens) }
            let start = below(characters.count)
            let end = min(characters.count, start + 1 + below(6))
            characters.replaceSubrange(start..<end, with: pick(Self.tokens))
            return String(characters)
        case 3:  // delete a line
            guard !lines.isEmpty else { return text }
            lines.remove(at: below(lines.count))
            return lines.joined(separator: "\n")
        case 4:  // duplicate a line
            guard !lines.isEmpty else { return text }
            let line = pick(lines)
            lines.insert(line, at: below(lines.count + 1))
            return lines.joined(separator: "\n")
        case 5:  // swap two lines
            guard lines.count >= 2 else { return text }
            lines.swapAt(below(lines.count), below(lines.count))
            return lines.joined(separator: "\n")
        case 6:  // splice a line of another corpus entry in
            let other = pick(corpus).split(separator: "\n", omittingEmptySubsequences: false)
            lines.insert(String(other.isEmpty ? "" : pick(other)), at: below(lines.count + 1))
            return lines.joined(separator: "\n")
        case 7:  // a digit string replaced by an extreme number
            var characters = Array(text)
            guard let start = (0..<characters.count).shuffledStart(&self).first(where: { characters[$0].isNumber })
            else { return text }
            var end = start
            while end < characters.count && characters[end].isNumber { end += 1 }
            characters.replaceSubrange(
                start..<end,
                with: pick([
                    "0", "-0", "-1", "18446744073709551616", "18446744073709551615", "9223372036854775808",
                    String(repeating: "9", count: 1 + below(200)), "1e3", "0000000000000000001",
                ]))
            return String(characters)
        case 8:  // a huge repeat of a short run, bounded
            var characters = Array(text)
            let start = below(characters.count + 1)
            let tail = Array(characters[start...].prefix(3))
            let run = tail.isEmpty ? Array(pick(Self.tokens)) : tail
            let repeated = Array(Array(repeating: run, count: 1 + below(3_000)).joined())
            characters.insert(contentsOf: repeated, at: start)
            return String(characters)
        case 9:  // delete a run of characters
            var characters = Array(text)
            guard !characters.isEmpty else { return text }
            let start = below(characters.count)
            characters.removeSubrange(start..<min(characters.count, start + 1 + below(12)))
            return String(characters)
        default:  // byte-level: flips, inserts, splices; invalid UTF-8 becomes U+FFFD as it would when read
            let bytes = mutate(bytes: Array(text.utf8), corpus: corpus.map { Array($0.utf8) })
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    // MARK: - Values

    /// A UInt64 that is often a boundary.
    mutating func uint64() -> UInt64 {
        switch below(8) {
        case 0: return 0
        case 1: return 1
        case 2: return UInt64.max
        case 3: return UInt64(Int64.max)
        case 4: return UInt64(Int64.max) + 1
        case 5: return UInt64(below(3_000))
        case 6: return UInt64(1) << UInt64(below(64))
        default: return random.next()
        }
    }

    /// A string that is often empty, huge, unicode or almost a name.
    mutating func string() -> String {
        switch below(8) {
        case 0: return ""
        case 1: return String(repeating: "C", count: 200 + below(400))
        case 2: return pick(["C1", "C2", "C3", "S1", "S2", "S3", "S4", "C0", "S0", "c1", " C1", "C1\0"])
        case 3: return pick(Self.tokens)
        case 4: return "S\(uint64())"
        case 5: return "C\(below(1_000_000_000))"
        case 6: return String(repeating: pick(["é", "🏦", "\0", "\u{301}"]), count: 1 + below(300))
        default: return pick(["C1", "S1"])
        }
    }

    /// A count near one of `limits` (and its neighbours), or a small one.
    mutating func count(near limits: [Int]) -> Int {
        guard chance(60) else { return below(4) }
        let limit = pick(limits)
        return max(0, limit + pick([-1, 0, 1]))
    }
}

extension Range where Bound == Int {
    /// The positions from a random start, wrapping around: a random first match of a predicate.
    fileprivate func shuffledStart(_ mutator: inout Mutator) -> [Int] {
        guard !isEmpty else { return [] }
        let start = lowerBound + mutator.below(count)
        return Array(start..<upperBound) + Array(lowerBound..<start)
    }
}

/// Text as Swift would write it in a literal, cut to a readable length: how a failing input is printed.
func escaped(_ text: String, limit: Int = 4_000) -> String {
    let shown =
        text.unicodeScalars.count > limit ? String(String.UnicodeScalarView(text.unicodeScalars.prefix(limit))) : text
    return shown.debugDescription + (shown.unicodeScalars.count < text.unicodeScalars.count ? " (cut)" : "")
}

/// Bytes in hex, cut to a readable length.
func escaped(_ bytes: [UInt8], limit: Int = 2_000) -> String {
    let hex = bytes.prefix(limit).map {
        String($0, radix: 16).count == 1 ? "0\(String($0, radix: 16))" : String($0, radix: 16)
    }
    return "[\(bytes.count) bytes] " + hex.joined() + (bytes.count > limit ? "... (cut)" : "")
}

/// The number of lines an error may point into: every kind of line break any of our parsers (or YAML) counts, plus
/// one for the end of the file.
func lineCount(_ text: String) -> Int {
    var count = 1
    var previous: Unicode.Scalar?
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\n" where previous == "\r": break
        case "\n", "\r", "\u{85}", "\u{2028}", "\u{2029}", "\u{0B}", "\u{0C}": count += 1
        default: break
        }
        previous = scalar
    }
    return count + 1
}

/// Runs one surface: `iterations` inputs made by `generate`, each checked by `check`. Prints one summary line, and
/// records an issue with the seed, iteration and escaped input for each broken promise (the first few in full).
func fuzz<Input>(
    _ surface: String,
    iterations: Int = FuzzSettings.iterations,
    seed: UInt64 = FuzzSettings.seed,
    generate: (inout Mutator, Int) -> Input,
    describe: (Input) -> String,
    check: (Input) throws -> Verdict,
    sourceLocation: SourceLocation = #_sourceLocation
) rethrows {
    var accepted = 0
    var refused = 0
    var failures = 0
    for iteration in 0..<iterations {
        var mutator = Mutator(seed: seed, surface: surface, iteration: iteration)
        let input = generate(&mutator, iteration)
        switch try check(input) {
        case .accepted: accepted += 1
        case .refused: refused += 1
        case .failed(let problem):
            failures += 1
            if failures <= 5 {
                Issue.record(
                    """
                    fuzz \(surface): \(problem)
                    seed \(seed), iteration \(iteration); replay with FUZZ_SEED=\(seed) FUZZ_ITERATIONS=\(iteration + 1)
                    input: \(describe(input))
                    """, sourceLocation: sourceLocation)
            }
        }
    }
    print(
        "fuzz \(surface): \(iterations) inputs (seed \(seed)): \(accepted) accepted, \(refused) refused with a "
            + "located error, \(failures) failures")
}

/// The same, for surfaces whose check is asynchronous (the services).
func fuzzAsync<Input>(
    _ surface: String,
    iterations: Int = FuzzSettings.iterations,
    seed: UInt64 = FuzzSettings.seed,
    generate: (inout Mutator, Int) -> Input,
    describe: (Input) -> String,
    check: (Input) async throws -> Verdict,
    sourceLocation: SourceLocation = #_sourceLocation
) async throws {
    var accepted = 0
    var refused = 0
    var failures = 0
    for iteration in 0..<iterations {
        var mutator = Mutator(seed: seed, surface: surface, iteration: iteration)
        let input = generate(&mutator, iteration)
        switch try await check(input) {
        case .accepted: accepted += 1
        case .refused: refused += 1
        case .failed(let problem):
            failures += 1
            if failures <= 5 {
                Issue.record(
                    """
                    fuzz \(surface): \(problem)
                    seed \(seed), iteration \(iteration); replay with FUZZ_SEED=\(seed) FUZZ_ITERATIONS=\(iteration + 1)
                    input: \(describe(input))
                    """, sourceLocation: sourceLocation)
            }
        }
    }
    print(
        "fuzz \(surface): \(iterations) inputs (seed \(seed)): \(accepted) accepted, \(refused) refused with a "
            + "located error, \(failures) failures")
}
