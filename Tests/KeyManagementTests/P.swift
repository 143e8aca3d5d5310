import XCTest
final class KMPlaceholder: XCTestCase { func testX() {} }
