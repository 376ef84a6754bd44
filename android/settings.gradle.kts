// The Android build: the SDK library (:sdk, the AAR) and the camera sample app (:sample). Open this
// folder in Android Studio, or run ./gradlew here. Versions live in gradle/libs.versions.toml.
// (tools/test_bindings.sh builds and tests the same Kotlin sources without Gradle.)
pluginManagement {
    repositories {
        google {
            content {
                includeGroupByRegex("com\\.android.*")
                includeGroupByRegex("com\\.google.*")
                includeGroupByRegex("androidx.*")
            }
        }
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    // Every module takes its repositories from here.
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "smolvlm-android"
include(":sdk", ":sample")
