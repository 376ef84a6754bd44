package dev.smolvlm.sample.state

import java.io.File

/**
 * This process's resident memory in bytes (`VmRSS` of `/proc/self/status`: the Java heap, the
 * model's weights and caches, everything), or 0 where the file cannot be read. Linux and Android
 * alike; cheap enough to call once per answer.
 */
fun residentMemoryBytes(): Long = try {
    File("/proc/self/status").useLines { lines ->
        lines.firstOrNull { it.startsWith("VmRSS:") }?.split(Regex("\\s+"))?.getOrNull(1)?.toLongOrNull()
    }?.let { kb -> kb * 1024 } ?: 0
} catch (e: java.io.IOException) {
    0
}
