package dev.smolvlm.testing

import org.junit.runner.Description
import org.junit.runner.JUnitCore
import org.junit.runner.notification.Failure
import org.junit.runner.notification.RunListener
import kotlin.system.exitProcess

/**
 * Runs JUnit 4 test classes and prints one `LABEL: N passed, N failed` line (what CI reads), for
 * tools/test_bindings.sh. Arguments: the label, then the test classes' names. (Gradle runs the
 * same classes with its own runner.)
 */
fun main(args: Array<String>) {
    require(args.size >= 2) { "usage: JUnitSuite LABEL CLASS..." }
    val core = JUnitCore()
    core.addListener(object : RunListener() {
        override fun testFinished(description: Description) = println("test ${description.methodName} ... done")
        override fun testFailure(failure: Failure) {
            println("FAILED ${failure.description.methodName}: ${failure.message}")
            println(failure.trace.lines().take(12).joinToString("\n"))
        }
    })
    val result = core.run(*args.drop(1).map { Class.forName(it) }.toTypedArray())
    val failed = result.failureCount
    println("${args[0]}: ${result.runCount - failed} passed, $failed failed")
    exitProcess(if (failed == 0 && result.runCount > 0) 0 else 1)
}
