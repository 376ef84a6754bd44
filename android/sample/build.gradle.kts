// The camera sample app (see README.md here). Views, not Compose: tools/test_bindings.sh can
// type-check it without Google's Maven repository (kotlinc + android.jar API 23 + aapt's R + the
// AndroidX/CameraX stand-ins in tools/android-stubs); Compose could not be checked that way.
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    alias(libs.plugins.android.application)
    alias(libs.plugins.kotlin.android)
}

android {
    namespace = "dev.smolvlm.sample"
    compileSdk = 35
    defaultConfig {
        applicationId = "dev.smolvlm.sample"
        minSdk = 26
        targetSdk = 35
        versionCode = 1
        versionName = "1.0"
        // The Rust library is built for these two; JNA's 32-bit libraries would only add size.
        ndk { abiFilters += listOf("arm64-v8a", "x86_64") }
    }
    buildTypes {
        release {
            isMinifyEnabled = true
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"), "proguard-rules.pro")
        }
    }
    // Native libraries stay uncompressed in the APK (16 KB-aligned), loaded from there directly.
    packaging { jniLibs { useLegacyPackaging = false } }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

// The state tests (src/test) run on the host JVM against the real library, as the SDK's do: the
// SDK's host build of it (packed where JNA finds it), the fixtures, and the local stand-in for the
// hub that they start with python3 (tests/hub/server.py). tools/test_bindings.sh runs them too.
evaluationDependsOn(":sdk")

tasks.withType<Test>().configureEach {
    systemProperty("smolvlm.fixtures", rootDir.parentFile.resolve("tests/fixtures").absolutePath)
}

dependencies {
    implementation(project(":sdk"))
    implementation(libs.androidx.activity)
    implementation(libs.androidx.core)
    implementation(libs.androidx.lifecycle.viewmodel)
    implementation(libs.androidx.lifecycle.runtime)
    implementation(libs.androidx.camera.camera2)
    implementation(libs.androidx.camera.lifecycle)
    implementation(libs.androidx.camera.view)
    implementation(libs.kotlinx.coroutines.android)

    testImplementation(libs.jna)
    testRuntimeOnly(files(project(":sdk").tasks.named("hostLibsForTests")))
    testImplementation(libs.junit)
    testImplementation(libs.kotlin.test.junit)
}
