import XCTest
final class SRTPPlaceholderTests: XCTestCase { func testNothingYet() {} }
