import Atomics
#if canImport(Glibc)
import Glibc
#endif

/// A bounded single-producer / single-consumer queue between two pipeline stages
/// (`DESIGN.md` §4: batches move between stages through SPSC rings; no locks on the packet path).
///
/// Lock-free: the producer owns `tail`, the consumer owns `head`; each publishes its index with
/// a release store and reads the other's with an acquire load, so an element written before
/// `tail` moves is visible to the consumer that sees the new `tail` (and a slot freed before
/// `head` moves is free for the producer). The two indices live on separate 128-byte lines
/// (no false sharing between the two threads); each side also keeps a cached copy of the other
/// side's index and re-reads it only when the ring looks full (or empty).
///
/// Elements are moved in and out (a batch object travels, not its bytes). `push`/`pop` wait
/// when the ring is full/empty: a short spin, then `sched_yield`, then sleeps of 50 µs, so a
/// waiting stage gives its core to the others (this matters when there are more stages than
/// cores). `close()` ends the stream: `pop` returns nil once the ring is empty and closed;
/// `push` after `close` returns false.
public final class SPSCRing<Element>: @unchecked Sendable {
    public let capacity: Int
    private let mask: Int
    private let slots: UnsafeMutablePointer<Element>
    // Line 0: head (consumer), line 1: tail (producer), line 2: closed flag.
    private let lines: UnsafeMutableRawPointer
    private let head: UnsafeAtomic<Int>
    private let tail: UnsafeAtomic<Int>
    private let closedFlag: UnsafeAtomic<Bool>
    // Owned by one side each (never read by the other).
    private var producerTail = 0, producerHeadCache = 0
    private var consumerHead = 0, consumerTailCache = 0

    /// `capacity` is rounded up to a power of two (at least 2).
    public init(capacity: Int) {
        var c = 2
        while c < capacity { c <<= 1 }
        self.capacity = c
        mask = c - 1
        slots = .allocate(capacity: c)
        lines = UnsafeMutableRawPointer.allocate(byteCount: 3 * 128, alignment: 128)
        let h = lines.bindMemory(to: UnsafeAtomic<Int>.Storage.self, capacity: 1)
        h.initialize(to: .init(0))
        head = UnsafeAtomic(at: h)
        let t = (lines + 128).bindMemory(to: UnsafeAtomic<Int>.Storage.self, capacity: 1)
        t.initialize(to: .init(0))
        tail = UnsafeAtomic(at: t)
        let flag = (lines + 256).bindMemory(to: UnsafeAtomic<Bool>.Storage.self, capacity: 1)
        flag.initialize(to: .init(false))
        closedFlag = UnsafeAtomic(at: flag)
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
        tail.store(t &+ 1, ordering: .releasing)
        return true
    }

    /// Producer side: queues `element`, waiting while the ring is full. False (element
    /// dropped) if the ring was closed meanwhile (the consumer gave up).
    @discardableResult
    public func push(_ element: Element) -> Bool {
        var wait = Backoff()
        while !tryPush(element) {
            if isClosed { return false }
            wait.pause()
        }
        return true
    }

    /// Consumer side: the oldest element, or nil when the ring is empty.
    public func tryPop() -> Element? {
        let h = consumerHead
        if h == consumerTailCache {
            consumerTailCache = tail.load(ordering: .acquiring)
            if h == consumerTailCache { return nil }
        }
        let e = (slots + (h & mask)).move()
        consumerHead = h &+ 1
        head.store(h &+ 1, ordering: .releasing)
        return e
    }

    /// Consumer side: the oldest element, waiting while the ring is empty; nil once the ring
    /// is empty and closed.
    public func pop() -> Element? {
        var wait = Backoff()
        while true {
            if let e = tryPop() { return e }
            if isClosed {
                // Elements pushed before close() are still delivered.
                return tryPop()
            }
            wait.pause()
        }
    }

    /// Ends the stream (either side may call it; idempotent).
    public func close() { closedFlag.store(true, ordering: .releasing) }

    public var isClosed: Bool { closedFlag.load(ordering: .acquiring) }

    /// Elements queued now (approximate when the other side is active): the ring's occupancy.
    public var count: Int { tail.load(ordering: .relaxed) &- head.load(ordering: .relaxed) }
}

/// Waiting policy of a pipeline stage: spin briefly (the other side is usually about to
/// publish), then yield the core, then sleep in 50 µs steps so an idle stage costs no CPU.
public struct Backoff {
    private var rounds = 0
    public init() {}

    public mutating func pause() {
        rounds += 1
        if rounds <= 64 {
            return   // busy retry: cheapest when the other stage is mid-batch on another core
        } else if rounds <= 96 {
            sched_yield()
        } else {
            usleep(50)
        }
    }
}
