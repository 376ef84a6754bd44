// Android Studio entry point: the SDK module and a small camera sample app.
// (Written for Android developers; the repository's tests build the SDK on the JVM without Gradle,
// see tools/test_bindings.sh.)
pluginManagement {
    repositories { google(); mavenCentral(); gradlePluginPortal() }
}
dependencyResolutionManagement {
    repositories { google(); mavenCentral() }
}
rootProject.name = "smolvlm-android"
include(":sdk", ":sample")
