import Foundation

#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#endif

/// This process's memory, as the system counts it against the app.
public enum ProcessMemory {
    /// The memory the app is charged for, in bytes, or 0 where it cannot be read. Cheap enough
    /// to call once per answer.
    ///
    /// - On Apple platforms: `phys_footprint` of `TASK_VM_INFO`, the number Xcode's memory gauge
    ///   shows and the one iOS compares with the app's limit (raised by the
    ///   `com.apple.developer.kernel.increased-memory-limit` entitlement).
    /// - On Linux: the resident set (second field of `/proc/self/statm`, in pages).
    ///
    /// Either way it counts the model's weights and caches, which are native memory.
    public static func footprintBytes() -> Int64 {
        #if canImport(Darwin)
        var info = task_vm_info_data_t()
        var count = mach_msg_type_number_t(MemoryLayout<task_vm_info_data_t>.size / MemoryLayout<integer_t>.size)
        let result = withUnsafeMutablePointer(to: &info) { pointer in
            pointer.withMemoryRebound(to: integer_t.self, capacity: Int(count)) {
                task_info(taskSelf, task_flavor_t(TASK_VM_INFO), $0, &count)
            }
        }
        guard result == KERN_SUCCESS else { return 0 }
        return Int64(clamping: info.phys_footprint)
        #else
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = statm.split(separator: " ")
        guard fields.count > 1, let pages = Int64(fields[1]) else { return 0 }
        return pages * Int64(sysconf(Int32(_SC_PAGESIZE)))
        #endif
    }

    /// ``footprintBytes()`` in whole mebibytes (what the stats line shows as "MB").
    public static func footprintMB() -> Int {
        Int(footprintBytes() >> 20)
    }
}

#if canImport(Darwin)
/// This task's port, read once. (`mach_task_self_`, the global the C macro reads, is a mutable
/// global that Swift 6 refuses to read from non-isolated code with SDKs older than iOS 18.4's.)
private let taskSelf: mach_port_t = task_self_trap()
#endif
