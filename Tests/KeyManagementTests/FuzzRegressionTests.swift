import Foundation
import XCTest
@testable import KeyManagement

/// Inputs the libFuzzer campaign (Fuzz/, `make fuzz`; issue 19 finding 12) found, kept as
/// regression tests of the normal suite.
final class KeyManagementFuzzRegressionTests: XCTestCase {
    /// A YAML syntax error: Yams quotes the offending line in its message, and the gateway put
    /// that message into its error whole — a 1 MiB one-line file came back as a 1 MiB error line
    /// (finding 9 caps echoed values at ~80 characters). The message keeps position and reason,
    /// then is cut.
    func testYAMLSyntaxErrorDoesNotEchoTheWholeLine() {
        let line = String(repeating: "x", count: 100_000)
        for yaml in ["key: " + line + "\u{1}\n", "a: [" + line + "\n"] {
            XCTAssertThrowsError(try GatewayConfiguration.parse(yaml: yaml, fileName: "big.yaml")) { error in
                let message = "\(error)"
                XCTAssertTrue(message.hasPrefix("big.yaml: (root): not valid YAML ("), String(message.prefix(200)))
                XCTAssertTrue(message.hasSuffix("; fix: fix the YAML syntax"), String(message.suffix(200)))
                XCTAssertLessThan(message.utf8.count, 300, String(message.prefix(300)))
            }
        }
    }

    /// fuzz-config crash-ab286e26c34895954d7b2d24d06384bb28fba89d (the input as base64): a
    /// 2573-byte file with a control character at 1:1975 gave a 4734-byte error message.
    func testFuzzConfigCrashAb286e26() throws {
        let base64 = [
            "YmFzZTogJnIgeyBjaXBoZXI6IGFlcy01MTItY20sMtbGLjEuMS5jaXBoZXI6IGFlcy01MTItY20sMtbGLjEuMS4xOjUwMDAsIGtl",
            "eUdyb3UtWVVwOiAxLDLWxi4xLjEuMTo1MDAwLCBrZXlHcm91LVlVcDogMSwge3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7",
            "e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3vGLjEuMS4xOjUwMDAsIGtleUdyb3UtWVVwOiAxLDLWxi4x",
            "LjEuMTo1MDAwLCBrZXlHcm91LVlVcDogMSwge3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7",
            "e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7",
            "e3t7e3t7e3t7e3t7e3t7e3sxOjUwMDAsIGtleUdyb3UtWVVwOiAxLDLWxi4xLjEuMTo1MDAwLCBrZXlHcm91LVlVcDogMSwge3t7",
            "e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7",
            "e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3sga2V5R3JvdS1ZVXA6IDEsMtbGLjEuMS4xOjUwMDAsIGtleUdyb3UtWVVw",
            "OiAxMCwge3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7",
            "e3vGe3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7IGtleUdyb3UtWVVwOiAxLDLWxi4xLjEuMTo1MDAwLCBr",
            "ZXlHcm91LVlVcDogMTAsIHt7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7",
            "e3t7e3t7e3t7e3t7xi4xLjEuMTo1MDAwLCBrZXlHcm91LVlVcDogMSwy1sYuMS4xLjE6NTAwMCwga2V5R3JvdS1ZVXA6IDEsIHt7",
            "e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7",
            "e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7MTo1MDAwLCBrZXlH",
            "cm91LVlVcDogMSwy1sYuMS4xLjE6NTAwMCwga2V5R3JvdS1ZVXA6IDEsIHt7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7",
            "e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7",
            "e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7",
            "e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7MTo1MDAwLCBrZXlHcm91LVlVcDogMSwy1sYuMS4xLjE6NTAwMCwga2V5R3Jv",
            "dS1ZVXA6IDEsIHt7e3t7e3t7e3t7e3t7e3t7ey96b25laW5mby97e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7",
            "e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7",
            "e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7",
            "e3t7e3t7e3t7e3t7e3t7e3sxOjUwMDAsIC4xLjEuMTo1MDAwLCBrZXlHcm91LVlVcDogMSwy1sYuMS4xLjE6NTAwMCwga2V5R3Jv",
            "dS1ZVXA6IDEsIHt7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7",
            "e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7",
            "MTo1MDAwLCBrZXlHcm91LVlVcDogMSwy1sYuMS4xLjE6NTAwMCwga2V5R3JvdS1ZVXA6IDEsIHt7e3t7e3t7e3t7e3t7e3t7e3t7",
            "e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7",
            "e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3vnBwAAAAAAAHt7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7",
            "e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7MTo1MDAwLCBrZXlHcm91LVlVcDogMSwy1sYuMS4xLjE6",
            "NTAwMCwga2V5R3JvdS1ZVXA6IDEsIHt7e3t7e3t7e3t7e3t7e3t7ey96b25laW5mby97e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7",
            "e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7",
            "e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7",
            "e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3sxOjUwMDAsIGtleUdyb3UtWVVwOiAxLDLWxi4xLjEuMTo1MDAwLCBrZXlHcm91",
            "LVlVcDogMSwge3t7e3t7e3t7e3t7e3t7e3t7L3pvbmVpbmZvL3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7",
            "e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7e3t7",
            "e3t7e3t7e3t7e3twcm90IHt7e3t7IH0=",
        ].joined()
        let input = try XCTUnwrap(Data(base64Encoded: base64))
        XCTAssertEqual(input.count, 2573)
        XCTAssertThrowsError(try GatewayConfiguration.parse(yaml: String(decoding: input, as: UTF8.self), fileName: "fuzz.yaml")) { error in
            let message = "\(error)"
            XCTAssertTrue(message.hasPrefix("fuzz.yaml: (root): not valid YAML (1:1975: "), String(message.prefix(200)))
            XCTAssertLessThan(message.utf8.count, 300, String(message.prefix(300)))
        }
    }
}
