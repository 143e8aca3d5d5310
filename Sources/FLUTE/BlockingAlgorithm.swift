/// FEC Object Transmission Information for FEC Encoding ID 0: what a receiver needs to
/// partition an object (RFC 5445 §3.3; from EXT_FTI or from the FDT).
public struct ObjectTransmissionInformation: Equatable, Hashable, Sendable {
    /// L: bytes of the transport object.
    public var transferLength: UInt64
    /// E: bytes per encoding symbol.
    public var encodingSymbolLength: Int
    /// B: maximum source block length in symbols.
    public var maximumSourceBlockLength: Int

    public init(transferLength: UInt64, encodingSymbolLength: Int, maximumSourceBlockLength: Int) {
        self.transferLength = transferLength
        self.encodingSymbolLength = encodingSymbolLength
        self.maximumSourceBlockLength = maximumSourceBlockLength
    }

    public init(_ fti: EXTFTI) {
        self.init(transferLength: fti.transferLength, encodingSymbolLength: Int(fti.encodingSymbolLength),
                  maximumSourceBlockLength: Int(fti.maximumSourceBlockLength))
    }
}

/// Why a set of FEC parameters cannot be partitioned.
public enum BlockingError: Error, Equatable, Sendable, CustomStringConvertible {
    case zeroEncodingSymbolLength
    case zeroMaximumSourceBlockLength
    /// SBN and ESI are 16 bits in the Compact No-Code FEC Payload ID (RFC 5445 §3.2).
    case sourceBlockTooLong(symbols: Int)
    case tooManySourceBlocks(blocks: Int)
    /// E must fit the 16-bit EXT_FTI field (RFC 5445 §3.3).
    case encodingSymbolLengthTooLarge(Int)

    public var description: String {
        switch self {
        case .zeroEncodingSymbolLength: return "encoding symbol length E = 0 (RFC 5052 §9.1 needs E > 0)"
        case .zeroMaximumSourceBlockLength: return "maximum source block length B = 0 (RFC 5052 §9.1 needs B > 0)"
        case let .sourceBlockTooLong(n): return "source blocks of \(n) symbols exceed the 16-bit ESI, RFC 5445 §3.2"
        case let .tooManySourceBlocks(n): return "\(n) source blocks exceed the 16-bit SBN, RFC 5445 §3.2"
        case let .encodingSymbolLengthTooLarge(e): return "encoding symbol length \(e) exceeds the 16-bit field, RFC 5445 §3.3"
        }
    }
}

/// The source-block partitioning of RFC 5052 §9.1 (= RFC 3926 §9.1; `flute.md` 6).
///
/// T = ⌈L/E⌉, N = ⌈T/B⌉, A_large = ⌈T/N⌉, A_small = ⌊T/N⌋, I = T − A_small·N;
/// blocks 0..I−1 have A_large symbols, blocks I..N−1 have A_small.
public struct SourceBlockPartition: Equatable, Sendable {
    public let transferLength: UInt64
    public let encodingSymbolLength: Int
    public let maximumSourceBlockLength: Int
    /// T: source symbols in the object.
    public let sourceSymbolCount: Int
    /// N: source blocks.
    public let sourceBlockCount: Int
    /// A_large.
    public let largeBlockLength: Int
    /// A_small.
    public let smallBlockLength: Int
    /// I: number of large blocks.
    public let largeBlockCount: Int

    public init(_ oti: ObjectTransmissionInformation) throws(BlockingError) {
        try self.init(transferLength: oti.transferLength, encodingSymbolLength: oti.encodingSymbolLength,
                      maximumSourceBlockLength: oti.maximumSourceBlockLength)
    }

    public init(transferLength: UInt64, encodingSymbolLength: Int, maximumSourceBlockLength: Int) throws(BlockingError) {
        guard encodingSymbolLength > 0 else { throw .zeroEncodingSymbolLength }
        guard maximumSourceBlockLength > 0 else { throw .zeroMaximumSourceBlockLength }
        guard encodingSymbolLength <= 0xFFFF else { throw .encodingSymbolLengthTooLarge(encodingSymbolLength) }
        let e = UInt64(encodingSymbolLength)
        let symbols = transferLength / e + (transferLength % e == 0 ? 0 : 1)
        // At most 2^16 blocks of at most 2^16 symbols: bound T before any Int arithmetic.
        guard symbols <= 1 << 32 else { throw .tooManySourceBlocks(blocks: Int(clamping: symbols / UInt64(min(maximumSourceBlockLength, 1 << 16)))) }
        let t = Int(symbols)
        let n = t == 0 ? 0 : (t - 1) / maximumSourceBlockLength + 1
        guard n <= 65536 else { throw .tooManySourceBlocks(blocks: n) }
        let aLarge = n == 0 ? 0 : (t + n - 1) / n
        let aSmall = n == 0 ? 0 : t / n
        guard aLarge <= 65536 else { throw .sourceBlockTooLong(symbols: aLarge) }
        self.transferLength = transferLength
        self.encodingSymbolLength = encodingSymbolLength
        self.maximumSourceBlockLength = maximumSourceBlockLength
        sourceSymbolCount = t
        sourceBlockCount = n
        largeBlockLength = aLarge
        smallBlockLength = aSmall
        largeBlockCount = t - aSmall * n
    }

    /// Symbols in block `sbn` (0 for a block that does not exist).
    public func symbolCount(ofBlock sbn: Int) -> Int {
        guard sbn >= 0, sbn < sourceBlockCount else { return 0 }
        return sbn < largeBlockCount ? largeBlockLength : smallBlockLength
    }

    /// Index (0..<T) of the first symbol of block `sbn` in the object.
    public func firstSymbol(ofBlock sbn: Int) -> Int {
        let large = min(sbn, largeBlockCount)
        return large * largeBlockLength + max(0, sbn - largeBlockCount) * smallBlockLength
    }

    /// The object-wide symbol index of (SBN, ESI), or nil when the pair is outside the object.
    public func symbolIndex(sourceBlockNumber sbn: Int, encodingSymbolID esi: Int) -> Int? {
        guard esi >= 0, esi < symbolCount(ofBlock: sbn) else { return nil }
        return firstSymbol(ofBlock: sbn) + esi
    }

    /// Byte offset of block `sbn` in the object.
    public func firstByte(ofBlock sbn: Int) -> UInt64 { UInt64(firstSymbol(ofBlock: sbn)) * UInt64(encodingSymbolLength) }

    /// Bytes covered by block `sbn` (the last block may end short).
    public func byteCount(ofBlock sbn: Int) -> UInt64 {
        let start = firstByte(ofBlock: sbn)
        let end = min(transferLength, start + UInt64(symbolCount(ofBlock: sbn)) * UInt64(encodingSymbolLength))
        return end > start ? end - start : 0
    }

    /// Byte range of the symbol with object-wide index `index`: E bytes, except the very last
    /// symbol of the object, which is L − (T−1)·E bytes.
    public func byteRange(ofSymbol index: Int) -> Range<Int>? {
        guard index >= 0, index < sourceSymbolCount else { return nil }
        let start = index * encodingSymbolLength
        let end = min(Int(transferLength), start + encodingSymbolLength)
        return start..<end
    }
}
