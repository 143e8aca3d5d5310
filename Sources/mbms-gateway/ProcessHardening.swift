import CSocketShims
import Foundation

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
