import XCTest
@testable import KeyServer

final class KeyServerModuleTests: XCTestCase {
    func testBodyLimitIsBounded() {
        XCTAssertGreaterThan(KeyServerModule.maximumBodyBytes, 1024)
        XCTAssertLessThanOrEqual(KeyServerModule.maximumBodyBytes, 1 << 20)
    }
}
