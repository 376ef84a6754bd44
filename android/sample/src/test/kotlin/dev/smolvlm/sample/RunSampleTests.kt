package dev.smolvlm.sample

import dev.smolvlm.sample.state.LiveCaptioningTest
import dev.smolvlm.sample.state.ModelSetupTest
import org.junit.runner.Description
import org.junit.runner.JUnitCore
import org.junit.runner.notification.Failure
import org.junit.runner.notification.RunListener
import kotlin.system.exitProcess

/** Runs the sample app's state tests (JUnit 4) and prints one `Kotlin sample: N passed, N failed` line. */
fun main() {
    val core = JUnitCore()
    core.addListener(object : RunListener() {
        override fun testFinished(description: Description) = println("test ${description.methodName} ... done")
        override fun testFailure(failure: Failure) {
            println("FAILED ${failure.description.methodName}: ${failure.message}")
            println(failure.trace.lines().take(12).joinToString("\n"))
        }
    })
    val result = core.run(ModelSetupTest::class.java, LiveCaptioningTest::class.java)
    val failed = result.failureCount
    println("Kotlin sample: ${result.runCount - failed} passed, $failed failed")
    exitProcess(if (failed == 0 && result.runCount > 0) 0 else 1)
}
