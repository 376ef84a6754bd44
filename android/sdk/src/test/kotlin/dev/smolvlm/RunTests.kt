package dev.smolvlm

import org.junit.runner.Description
import org.junit.runner.JUnitCore
import org.junit.runner.notification.Failure
import org.junit.runner.notification.RunListener
import kotlin.system.exitProcess

/** Runs the JUnit 4 suite and prints one `N passed, N failed` line (what CI reads). */
fun main() {
    val core = JUnitCore()
    core.addListener(object : RunListener() {
        override fun testFinished(description: Description) = println("test ${description.methodName} ... done")
        override fun testFailure(failure: Failure) {
            println("FAILED ${failure.description.methodName}: ${failure.message}")
            println(failure.trace.lines().take(12).joinToString("\n"))
        }
    })
    val result = core.run(SmolVLMTest::class.java, DownloadTest::class.java, LiveCameraTest::class.java)
    val failed = result.failureCount
    println("Kotlin: ${result.runCount - failed} passed, $failed failed")
    exitProcess(if (failed == 0 && result.runCount > 0) 0 else 1)
}
