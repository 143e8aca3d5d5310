import XCTest
@testable import FLUTE

final class BlockingAlgorithmTests: XCTestCase {
    func testPlaceholder() throws {}
}
