// The SmolVLM Android library (AAR): the plain-JVM Kotlin API (src/main), the Android converters
// (src/android), the uniffi-generated bindings and the native libraries built by cargo-ndk.
import org.gradle.api.tasks.Exec

plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

val repoRoot = rootDir.parentFile
val generated = layout.buildDirectory.dir("generated/uniffi")
val jniLibs = layout.buildDirectory.dir("jniLibs")

android {
    namespace = "dev.smolvlm"
    compileSdk = 35
    defaultConfig {
        minSdk = 26
        ndk { abiFilters += listOf("arm64-v8a", "x86_64") }
    }
    sourceSets["main"].apply {
        java.srcDirs("src/main/kotlin", "src/android/kotlin", generated)
        jniLibs.srcDir(jniLibs)
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin { jvmToolchain(17) }

dependencies {
    implementation("net.java.dev.jna:jna:5.15.0@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
    compileOnly("androidx.camera:camera-core:1.4.1")
    testImplementation("junit:junit:4.13.2")
    testImplementation(kotlin("test-junit"))
}

// Native libraries: `cargo ndk` (cargo install cargo-ndk; needs ANDROID_NDK_HOME) for each ABI.
val cargoNdk by tasks.registering(Exec::class) {
    workingDir = repoRoot
    commandLine(
        "cargo", "ndk", "-t", "arm64-v8a", "-t", "x86_64", "-o", jniLibs.get().asFile.path,
        "build", "--release", "-p", "smolvlm-ffi",
    )
}

// Kotlin bindings, generated from the host build of the same library with the pinned bindgen.
val uniffiBindings by tasks.registering(Exec::class) {
    workingDir = repoRoot
    commandLine(
        "bash", "-c",
        "cargo build --release -p smolvlm-ffi && cargo uniffi-bindgen generate --library " +
            "target/release/libsmolvlm_ffi.so --language kotlin --out-dir ${generated.get().asFile.path}",
    )
}

tasks.named("preBuild") { dependsOn(cargoNdk, uniffiBindings) }
