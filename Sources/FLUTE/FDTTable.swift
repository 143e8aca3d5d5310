/// The FDT state of one FLUTE session (one TSI): FDT Instances merged into a TOI → File map
/// (RFC 3926 §3.4.1–3.4.2; `flute.md` 5).
///
/// * An instance re-sent with the same FDT Instance ID and the same content is a repeat (no-op);
///   the same ID with different content while the first is unexpired is refused and counted.
/// * A later instance may add files; a File entry for a TOI already mapped (unexpired) to a
///   different Content-Location or transfer length is a TOI collision: refused and counted,
///   the first mapping stays.
/// * Entries expire with the latest `Expires` of the instances that listed them. Time is a
///   parameter (NTP seconds); no clock is read.
public struct FDTTable: Sendable {
    public struct Counters: Equatable, Sendable {
        public var instancesAccepted = 0
        public var instancesRepeated = 0
        /// Same FDT Instance ID, different content (RFC 3926 §3.4.1 forbids it).
        public var instancesConflicting = 0
        /// Already expired on arrival.
        public var instancesExpired = 0
        /// File entries refused: TOI mapped to something else by an unexpired instance.
        public var toiCollisions = 0
        /// File entries refused: the table is full.
        public var filesOverLimit = 0
        /// File entries removed because every instance listing them expired.
        public var filesExpired = 0
        public init() {}
    }

    public struct Entry: Equatable, Sendable {
        public var file: FDTFile
        /// OTI with the instance defaults applied (nil when the FDT cannot size the object).
        public var objectTransmissionInformation: ObjectTransmissionInformation?
        public var fdtInstanceID: UInt32
        public var expires: UInt32
    }

    public enum InsertOutcome: Equatable, Sendable {
        /// A new instance; the TOIs it newly mapped.
        case accepted(newTOIs: [UInt64])
        case repeated
        case conflicting
        case expired
    }

    public var maximumFiles: Int
    /// Instance records kept for repeat/conflict detection.
    public var maximumInstances: Int
    public private(set) var counters = Counters()
    public private(set) var files: [UInt64: Entry] = [:]
    /// Per FDT Instance ID: a fingerprint of the content (Swift's per-process seeded hash, so
    /// it cannot be aimed at) and the expiry. Keeps memory per instance constant.
    private var instances: [UInt32: (fingerprint: Int, expires: UInt32)] = [:]

    public init(maximumFiles: Int = 10_000, maximumInstances: Int = 1024) {
        self.maximumFiles = maximumFiles
        self.maximumInstances = maximumInstances
    }

    public func entry(forTOI toi: UInt64) -> Entry? { files[toi] }

    /// Merges an instance. `ntpNow` nil disables the expiry check on arrival.
    public mutating func insert(_ instance: FDTInstance, fdtInstanceID: UInt32, ntpNow: UInt32?) -> InsertOutcome {
        if let ntpNow, instance.expires < ntpNow {
            counters.instancesExpired += 1
            return .expired
        }
        if let known = instances[fdtInstanceID], ntpNow.map({ known.expires >= $0 }) ?? true {
            if known.fingerprint == instance.hashValue {
                counters.instancesRepeated += 1
                return .repeated
            }
            counters.instancesConflicting += 1
            return .conflicting
        }
        instances[fdtInstanceID] = (instance.hashValue, instance.expires)
        if instances.count > maximumInstances {
            // Bound the instance memory too: forget the earliest-expiring instance record.
            if let oldest = instances.min(by: { $0.value.expires < $1.value.expires })?.key, oldest != fdtInstanceID {
                instances[oldest] = nil
            }
        }
        counters.instancesAccepted += 1
        var added: [UInt64] = []
        for file in instance.files {
            let oti = instance.objectTransmissionInformation(for: file)
            if var existing = files[file.toi] {
                let sameObject = existing.file.contentLocation == file.contentLocation
                    && (existing.objectTransmissionInformation?.transferLength == oti?.transferLength
                        || existing.objectTransmissionInformation == nil || oti == nil)
                guard sameObject else {
                    counters.toiCollisions += 1
                    continue
                }
                if instance.expires >= existing.expires {
                    existing.file = file
                    existing.objectTransmissionInformation = oti ?? existing.objectTransmissionInformation
                    existing.fdtInstanceID = fdtInstanceID
                    existing.expires = instance.expires
                }
                files[file.toi] = existing
            } else {
                guard files.count < maximumFiles else {
                    counters.filesOverLimit += 1
                    continue
                }
                files[file.toi] = Entry(file: file, objectTransmissionInformation: oti, fdtInstanceID: fdtInstanceID, expires: instance.expires)
                added.append(file.toi)
            }
        }
        return .accepted(newTOIs: added)
    }

    /// Drops entries and instance records whose Expires is before `ntpNow`.
    @discardableResult
    public mutating func expire(ntpNow: UInt32) -> [UInt64] {
        let gone = files.filter { $0.value.expires < ntpNow }.map(\.key)
        for toi in gone { files[toi] = nil }
        counters.filesExpired += gone.count
        instances = instances.filter { $0.value.expires >= ntpNow }
        return gone
    }
}
