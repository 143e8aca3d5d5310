import CSocketShims
import Foundation
import Gateway
import Logging

/// Process-wide protections for commands that hold keys for a long time (`run`).
enum ProcessHardening {
    struct Failure: Error, CustomStringConvertible { let description: String }

    /// prctl(PR_SET_DUMPABLE, 0): no core dump can write the KEK, MSKs or MTKs to disk, and
    /// other processes of the same user cannot ptrace this one or read its memory.
    static func disableCoreDumps() throws {
        guard mbms_set_dumpable(0) == 0 else {
            throw Failure(description: "prctl(PR_SET_DUMPABLE, 0) failed (\(String(cString: strerror(errno)))); fix: run on Linux, or pass --allow-core-dumps to leave the process dumpable")
        }
    }
}

extension ProcessHardening {
    /// The long-running commands' logging: swift-log to stderr at `--log-level` (info when the
    /// name is unknown), as logfmt with values quoted where needed or as JSON lines
    /// (`GatewayLogHandler`, `--log-format`). Returns the level in force.
    @discardableResult
    static func bootstrapLogging(_ name: String, format: LogFormat = .logfmt) -> Logger.Level {
        let level = Logger.Level(rawValue: name) ?? .info
        GatewayLogHandler.bootstrap(format: format, level: level)
        return level
    }
}
