import LedgerRPC

/// The protobuf wire format without a schema: enough to change the value of one field of a valid message (at any
/// depth), drop a field, or repeat one many times, so mutations reach the conversions instead of stopping at the
/// protobuf parser as most byte flips do.
enum ProtoFields {
    enum Value: Equatable {
        case varint(UInt64)
        case fixed64([UInt8])
        case bytes([UInt8])
        case fixed32([UInt8])
    }

    struct Field: Equatable {
        var number: UInt64
        var value: Value
    }

    /// The fields of a well-formed message, or nil.
    static func parse(_ bytes: [UInt8]) -> [Field]? {
        var fields: [Field] = []
        var index = 0
        func varint() -> UInt64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while index < bytes.count, shift < 64 {
                let byte = bytes[index]
                index += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
            return nil
        }
        while index < bytes.count {
            guard let key = varint(), key >> 3 >= 1 else { return nil }
            let number = key >> 3
            switch key & 7 {
            case 0:
                guard let value = varint() else { return nil }
                fields.append(Field(number: number, value: .varint(value)))
            case 1:
                guard index + 8 <= bytes.count else { return nil }
                fields.append(Field(number: number, value: .fixed64(Array(bytes[index..<(index + 8)]))))
                index += 8
            case 2:
                guard let length = varint(), length <= UInt64(bytes.count - index) else { return nil }
                let end = index + Int(length)
                fields.append(Field(number: number, value: .bytes(Array(bytes[index..<end]))))
                index = end
            case 5:
                guard index + 4 <= bytes.count else { return nil }
                fields.append(Field(number: number, value: .fixed32(Array(bytes[index..<(index + 4)]))))
                index += 4
            default:
                return nil
            }
        }
        return fields
    }

    static func serialize(_ fields: [Field]) -> [UInt8] {
        var bytes: [UInt8] = []
        func varint(_ value: UInt64) {
            var value = value
            while value >= 0x80 {
                bytes.append(UInt8(value & 0x7F) | 0x80)
                value >>= 7
            }
            bytes.append(UInt8(value))
        }
        for field in fields {
            switch field.value {
            case .varint(let value):
                varint(field.number << 3)
                varint(value)
            case .fixed64(let raw):
                varint(field.number << 3 | 1)
                bytes += raw
            case .bytes(let raw):
                varint(field.number << 3 | 2)
                varint(UInt64(raw.count))
                bytes += raw
            case .fixed32(let raw):
                varint(field.number << 3 | 5)
                bytes += raw
            }
        }
        return bytes
    }

    /// The limits of repeated fields: a repeat lands near them.
    static let limits = [
        WireLimits.messagesPerBatchMax, WireLimits.entriesPerMessageMax, WireLimits.requestsPerSlotMax,
        WireLimits.forwardedRequestsMax, WireLimits.changesPerTransactionMax, WireLimits.participantsPerTransactionMax,
        WireLimits.accountRangesPerCommandMax, WireLimits.commandsPerBatchMax,
    ]

    /// The largest message a repeat makes.
    static let repeatBytesMax = 512 * 1024
}

extension Mutator {
    /// A valid message with one to three of its fields changed: a value, a string, a nested field, a drop, a repeat.
    mutating func mutate(fields bytes: [UInt8]) -> [UInt8] {
        var bytes = bytes
        for _ in 0..<(1 + below(3)) {
            bytes = mutateField(bytes, depth: 0)
        }
        return bytes
    }

    private mutating func mutateField(_ bytes: [UInt8], depth: Int) -> [UInt8] {
        guard var fields = ProtoFields.parse(bytes), !fields.isEmpty else {
            // An empty message: give it a field.
            return ProtoFields.serialize([
                ProtoFields.Field(
                    number: UInt64(1 + below(12)), value: chance(50) ? .varint(uint64()) : .bytes(Array(string().utf8)))
            ])
        }
        let index = below(fields.count)
        switch below(10) {
        case 0:  // drop a field
            fields.remove(at: index)
        case 1:  // repeat a field many times, bounded in bytes
            let size = max(1, ProtoFields.serialize([fields[index]]).count)
            let times = min(count(near: ProtoFields.limits), ProtoFields.repeatBytesMax / size)
            fields.insert(contentsOf: Array(repeating: fields[index], count: times), at: index)
        case 2:  // a field the schema does not have, or a known number with another wire type
            fields.insert(
                ProtoFields.Field(
                    number: UInt64(1 + below(20)), value: chance(50) ? .varint(uint64()) : .bytes(Array(string().utf8))),
                at: below(fields.count + 1))
        default:
            switch fields[index].value {
            case .varint:
                fields[index].value = .varint(uint64())
            case .bytes(let inner):
                if depth < 8, chance(70), let nested = ProtoFields.parse(inner), !nested.isEmpty {
                    fields[index].value = .bytes(mutateField(inner, depth: depth + 1))
                } else if chance(50) {
                    fields[index].value = .bytes(Array(string().utf8))
                } else {
                    fields[index].value = .bytes(mutate(bytes: inner, corpus: []))
                }
            case .fixed64, .fixed32:
                fields[index].value = .varint(uint64())
            }
        }
        return ProtoFields.serialize(fields)
    }
}
