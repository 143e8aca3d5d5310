import Atomics
import CSocketShims
#if canImport(Glibc)
import Glibc
#endif

/// A bounded single-producer / single-consumer queue between two threads (`DESIGN.md` §4: no
/// locks on the packet path). `replay`'s lanes hand their read, work and write turns to one
/// another through these rings.
///
/// Lock-free: the producer owns `tail`, the consumer owns `head`; each publishes its index with
/// a release store and reads the other's with an acquire load, so an element written before
/// `tail` moves is visible to the consumer that sees the new `tail` (and a slot freed before
/// `head` moves is free for the producer). The two indices live on separate 128-byte lines
/// (no false sharing between the two threads); each side also keeps a cached copy of the other
/// side's index and re-reads it only when the ring looks full (or empty).
///
/// Elements are moved in and out (a batch object travels, not its bytes). `push`/`pop` wait
/// when the ring is full/empty: a short spin (the other side is usually mid-batch on another
/// core), then the waiting side parks on a futex until the other side publishes, so a stage
/// with nothing to do costs no CPU (this matters when there are more stages than cores: an
/// earlier yield-and-sleep loop spent more system time than the stages' work). The park is
/// the classic sleeper handshake — the waiter announces itself, then re-checks the ring; the
/// other side publishes, then looks for a sleeper (both sequentially consistent) — so a wake
/// is never lost; the fence this costs is paid once per element, i.e. per batch, not per
/// packet. `close()` ends the stream and wakes both sides: `pop` returns nil once the ring is
/// empty and closed; `push` after `close` returns false.
public final class SPSCRing<Element>: @unchecked Sendable {
    public let capacity: Int
    private let mask: Int
    private let slots: UnsafeMutablePointer<Element>
    // Line 0: head (consumer), line 1: tail (producer), line 2: closed flag, line 3: the
    // consumer's parking spot (waits for "not empty"), line 4: the producer's ("not full").
    private let lines: UnsafeMutableRawPointer
    private let head: UnsafeAtomic<Int>
    private let tail: UnsafeAtomic<Int>
    private let closedFlag: UnsafeAtomic<Bool>
    private let notEmpty: Parking
    private let notFull: Parking
    // Owned by one side each (never read by the other).
    private var producerTail = 0, producerHeadCache = 0
    private var consumerHead = 0, consumerTailCache = 0

    /// Busy retries before a waiting side parks (see `push`/`pop`).
    public let spinRounds: Int

    /// `capacity` is rounded up to a power of two (at least 2). `spinRounds`: busy retries
    /// before a waiting side parks on its futex.
    public init(capacity: Int, spinRounds: Int = SPSCRing.defaultSpinRounds) {
        self.spinRounds = spinRounds
        var c = 2
        while c < capacity { c <<= 1 }
        self.capacity = c
        mask = c - 1
        slots = .allocate(capacity: c)
        lines = UnsafeMutableRawPointer.allocate(byteCount: 5 * 128, alignment: 128)
        let h = lines.bindMemory(to: UnsafeAtomic<Int>.Storage.self, capacity: 1)
        h.initialize(to: .init(0))
        head = UnsafeAtomic(at: h)
        let t = (lines + 128).bindMemory(to: UnsafeAtomic<Int>.Storage.self, capacity: 1)
        t.initialize(to: .init(0))
        tail = UnsafeAtomic(at: t)
        let flag = (lines + 256).bindMemory(to: UnsafeAtomic<Bool>.Storage.self, capacity: 1)
        flag.initialize(to: .init(false))
        closedFlag = UnsafeAtomic(at: flag)
        notEmpty = Parking(at: lines + 384)
        notFull = Parking(at: lines + 512)
    }

    deinit {
        // Whatever is still queued is released with the ring.
        let h = head.load(ordering: .acquiring), t = tail.load(ordering: .acquiring)
        var i = h
        while i != t {
            (slots + (i & mask)).deinitialize(count: 1)
            i &+= 1
        }
        slots.deallocate()
        lines.deallocate()   // the atomics' storage (trivial values: nothing to deinitialize)
    }

    /// Producer side: queues `element` unless the ring is full.
    public func tryPush(_ element: Element) -> Bool {
        let t = producerTail
        if t &- producerHeadCache >= capacity {
            producerHeadCache = head.load(ordering: .acquiring)
            if t &- producerHeadCache >= capacity { return false }
        }
        (slots + (t & mask)).initialize(to: element)
        producerTail = t &+ 1
        tail.store(t &+ 1, ordering: .sequentiallyConsistent)
        notEmpty.wakeIfParked()
        return true
    }

    /// Producer side: queues `element`, waiting while the ring is full. False (element
    /// dropped) if the ring was closed meanwhile (the consumer gave up).
    @discardableResult
    public func push(_ element: Element) -> Bool {
        var spins = 0
        while !tryPush(element) {
            if isClosed { return false }
            if spins < spinRounds { spins += 1; continue }
            notFull.park(recheck: { self.isClosed || self.producerTail &- self.head.load(ordering: .sequentiallyConsistent) < self.capacity })
        }
        return true
    }

    /// Busy retries before parking: about a microsecond.
    public static var defaultSpinRounds: Int { 200 }


    /// Consumer side: the oldest element, or nil when the ring is empty.
    public func tryPop() -> Element? {
        let h = consumerHead
        if h == consumerTailCache {
            consumerTailCache = tail.load(ordering: .acquiring)
            if h == consumerTailCache { return nil }
        }
        let e = (slots + (h & mask)).move()
        consumerHead = h &+ 1
        head.store(h &+ 1, ordering: .sequentiallyConsistent)
        notFull.wakeIfParked()
        return e
    }

    /// Consumer side: the oldest element, waiting while the ring is empty; nil once the ring
    /// is empty and closed.
    public func pop() -> Element? {
        var spins = 0
        while true {
            if let e = tryPop() { return e }
            if isClosed {
                // Elements pushed before close() are still delivered.
                return tryPop()
            }
            if spins < spinRounds { spins += 1; continue }
            notEmpty.park(recheck: { self.isClosed || self.tail.load(ordering: .sequentiallyConsistent) != self.consumerHead })
        }
    }

    /// Ends the stream (either side may call it; idempotent) and wakes a parked side.
    public func close() {
        closedFlag.store(true, ordering: .sequentiallyConsistent)
        notEmpty.wake()
        notFull.wake()
    }

    public var isClosed: Bool { closedFlag.load(ordering: .acquiring) }

    /// Elements queued now (approximate when the other side is active): the ring's occupancy.
    public var count: Int { tail.load(ordering: .relaxed) &- head.load(ordering: .relaxed) }
}

/// Where one side of a ring sleeps: a futex word (bumped by every wake) and a sleeper flag.
struct Parking {
    /// Longest single sleep of a parked side (it then re-checks and parks again): a safety net
    /// that turns a lost wake into a pause. Tests raise it so a lost wake shows as a hang.
    nonisolated(unsafe) static var timeoutNanoseconds = 100_000_000

    private let word: UnsafeMutablePointer<UInt32>
    private let sequence: UnsafeAtomic<UInt32>
    private let sleeping: UnsafeAtomic<Bool>

    init(at p: UnsafeMutableRawPointer) {
        let w = p.bindMemory(to: UnsafeAtomic<UInt32>.Storage.self, capacity: 1)
        w.initialize(to: .init(0))
        sequence = UnsafeAtomic(at: w)
        word = UnsafeMutableRawPointer(w).assumingMemoryBound(to: UInt32.self)
        let f = (p + 64).bindMemory(to: UnsafeAtomic<Bool>.Storage.self, capacity: 1)
        f.initialize(to: .init(false))
        sleeping = UnsafeAtomic(at: f)
    }

    /// Sleeps until woken, unless `recheck` (run after announcing the sleeper) finds the
    /// awaited state already there. Returns after `timeoutNanoseconds` at most either way
    /// (the caller loops), so even an unforeseen lost wake costs a pause, not a hang.
    func park(recheck: () -> Bool) {
        let seen = sequence.load(ordering: .sequentiallyConsistent)
        sleeping.store(true, ordering: .sequentiallyConsistent)
        if !recheck() { mbms_futex_wait(word, seen, Self.timeoutNanoseconds) }
        sleeping.store(false, ordering: .relaxed)
    }

    /// After publishing: wakes the other side if it announced itself asleep.
    @inline(__always)
    func wakeIfParked() {
        if sleeping.load(ordering: .sequentiallyConsistent) { wake() }
    }

    func wake() {
        sequence.wrappingIncrement(ordering: .sequentiallyConsistent)
        mbms_futex_wake(word, 1)
    }
}
