// The SmolVLM Android library (AAR, published as dev.smolvlm:smolvlm-android): the Kotlin API
// (src/main), the Android converters (src/android: Bitmap, CameraX ImageProxy), the Kotlin
// bindings uniffi generates, and libsmolvlm_ffi.so for arm64-v8a and x86_64 built by cargo-ndk.
//
// Needs, besides the Android SDK: Rust (rustup), `cargo install cargo-ndk`,
// `rustup target add aarch64-linux-android x86_64-linux-android`, and the NDK named by
// `ndkVersion` below (sdkmanager "ndk;<version>"). `./gradlew :sdk:testDebugUnitTest` runs the
// JVM suite in src/test against a host build of the same library (see "Unit tests" below).
import com.android.build.api.variant.HasUnitTest
import org.gradle.process.ExecOperations
import org.jetbrains.kotlin.gradle.dsl.JvmTarget
import javax.inject.Inject

plugins {
    alias(libs.plugins.android.library)
    alias(libs.plugins.kotlin.android)
    `maven-publish`
}

/** The repository root: the Cargo workspace holding the Rust library. */
val repoRoot: File = rootDir.parentFile

/** What a Rust build reads: changes to anything else do not rebuild the library. */
val rustSources: FileCollection = files(
    repoRoot.resolve("Cargo.toml"),
    repoRoot.resolve("Cargo.lock"),
    repoRoot.resolve(".cargo/config.toml"),
    repoRoot.resolve("core/Cargo.toml"),
    repoRoot.resolve("core/src"),
    repoRoot.resolve("bindings/ffi/Cargo.toml"),
    repoRoot.resolve("bindings/ffi/uniffi.toml"),
    repoRoot.resolve("bindings/ffi/src"),
)

/** The Android ABIs the library is built for (64-bit phones and the x86_64 emulator). */
val androidAbis = listOf("arm64-v8a", "x86_64")

/** Lowest Android API level: the SDK's minSdk, also the platform the Rust code links against. */
val minAndroidApi = 26

android {
    namespace = "dev.smolvlm"
    compileSdk = 35
    // NDK r28 links 16 KB-aligned libraries by default (Android 15+ devices may use 16 KB pages).
    ndkVersion = libs.versions.ndk.get()

    defaultConfig {
        minSdk = minAndroidApi
        consumerProguardFiles("consumer-rules.pro")
    }

    sourceSets {
        // src/main/kotlin is plain JVM Kotlin (also compiled without Android by
        // tools/test_bindings.sh); src/android/kotlin needs the Android platform.
        getByName("main") {
            kotlin.srcDir("src/android/kotlin")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    publishing {
        singleVariant("release") {
            withSourcesJar()
        }
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

// ---- Rust ----------------------------------------------------------------------------------

/**
 * The cargo to run: `$CARGO`, then rustup's `$CARGO_HOME/bin/cargo` or `~/.cargo/bin/cargo`
 * (Android Studio started from a launcher does not see the shell's PATH), then the PATH.
 */
fun findCargo(): String {
    val exe = if (System.getProperty("os.name").startsWith("Windows")) "cargo.exe" else "cargo"
    val candidates = listOfNotNull(
        System.getenv("CARGO")?.let(::File),
        System.getenv("CARGO_HOME")?.let { File(it, "bin/$exe") },
        File(System.getProperty("user.home"), ".cargo/bin/$exe"),
    ) + System.getenv("PATH").orEmpty().split(File.pathSeparator).filter { it.isNotEmpty() }.map { File(it, exe) }
    return candidates.firstOrNull { it.isFile && it.canExecute() }?.absolutePath
        ?: throw GradleException("cargo not found: install Rust with rustup (https://rustup.rs) or set CARGO")
}

/** A task that runs cargo in the Cargo workspace. */
abstract class CargoTask : DefaultTask() {
    /** Runs processes. */
    @get:Inject
    abstract val execOps: ExecOperations

    /** The Cargo workspace. */
    @get:Internal
    abstract val workspace: DirectoryProperty

    /** The cargo executable. */
    @get:Internal
    abstract val cargo: Property<String>

    /**
     * Runs `cargo <arguments>` with [extraEnv] added; cargo's own folder goes first on the PATH
     * (rustup's proxies and cargo subcommands such as cargo-ndk live there).
     */
    protected fun runCargo(arguments: List<String>, extraEnv: Map<String, String> = emptyMap()) {
        val cargoPath = cargo.get()
        val path = File(cargoPath).parent + File.pathSeparator + System.getenv("PATH").orEmpty()
        execOps.exec {
            workingDir = workspace.get().asFile
            executable = cargoPath
            args(arguments)
            environment(extraEnv + ("PATH" to path))
        }
    }
}

/** A cargo build of the FFI library: up to date while the Rust sources are unchanged. */
abstract class CargoBuild : CargoTask() {
    /** The Rust sources, manifests and lock file. */
    @get:InputFiles
    @get:PathSensitive(PathSensitivity.RELATIVE)
    abstract val sources: ConfigurableFileCollection
}

/**
 * `cargo ndk … build --release -p smolvlm-ffi`: the native library for each Android ABI, in
 * [outputDirectory]/<abi>/libsmolvlm_ffi.so (the jniLibs layout).
 */
abstract class CargoNdkBuild : CargoBuild() {
    /** Android ABI names (`arm64-v8a`, `x86_64`). */
    @get:Input
    abstract val abis: ListProperty<String>

    /** The API level linked against (the minSdk). */
    @get:Input
    abstract val platform: Property<Int>

    /** The NDK's version (an input: another NDK gives another library). */
    @get:Input
    abstract val ndkVersion: Property<String>

    /** The NDK AGP resolved for [ndkVersion]. */
    @get:Internal
    abstract val ndkDirectory: DirectoryProperty

    /** Receives <abi>/libsmolvlm_ffi.so. */
    @get:OutputDirectory
    abstract val outputDirectory: DirectoryProperty

    @TaskAction
    fun build() {
        val out = outputDirectory.get().asFile
        out.deleteRecursively()
        out.mkdirs()
        // NDK r28 already links with 16 KB pages; the flag keeps it so with an older NDK. Only
        // the Android targets' own RUSTFLAGS are set, so build scripts and host code are unaffected.
        val pageSize = "-C link-arg=-Wl,-z,max-page-size=16384"
        val env = mutableMapOf("ANDROID_NDK_HOME" to ndkDirectory.get().asFile.absolutePath)
        for (triple in listOf("aarch64-linux-android", "x86_64-linux-android")) {
            val key = "CARGO_TARGET_${triple.uppercase().replace('-', '_')}_RUSTFLAGS"
            env[key] = listOfNotNull(System.getenv(key), pageSize).joinToString(" ")
        }
        // A RUSTFLAGS in the environment would override the per-target flags: extend it instead.
        System.getenv("RUSTFLAGS")?.let { env["RUSTFLAGS"] = "$it $pageSize" }
        val args = listOf("ndk") + abis.get().flatMap { listOf("-t", it) } +
            listOf("--platform", platform.get().toString(), "-o", out.absolutePath) +
            listOf("build", "--release", "--locked", "-p", "smolvlm-ffi")
        runCargo(args, env)
    }
}

/**
 * The Kotlin bindings (package `dev.smolvlm.ffi`), generated from a built library by the
 * workspace's pinned uniffi-bindgen (`cargo run -p uniffi-bindgen`), so that bindings and
 * scaffolding come from the same uniffi.
 */
abstract class UniffiBindgen : CargoTask() {
    /** The library whose uniffi metadata describes the API. */
    @get:InputFile
    @get:PathSensitive(PathSensitivity.NONE)
    abstract val library: RegularFileProperty

    /** The bindgen crate, Cargo.lock (pins its uniffi) and bindings/ffi/uniffi.toml (the package name). */
    @get:InputFiles
    @get:PathSensitive(PathSensitivity.RELATIVE)
    abstract val config: ConfigurableFileCollection

    /** Receives dev/smolvlm/ffi/smolvlm_ffi.kt. */
    @get:OutputDirectory
    abstract val outputDirectory: DirectoryProperty

    @TaskAction
    fun generate() {
        val out = outputDirectory.get().asFile
        out.deleteRecursively()
        out.mkdirs()
        val args = listOf("run", "--locked", "--quiet", "-p", "uniffi-bindgen", "--", "generate") +
            listOf("--library", library.get().asFile.absolutePath, "--language", "kotlin") +
            listOf("--out-dir", out.absolutePath, "--no-format")
        runCargo(args)
    }
}

val cargoExecutable = providers.provider { findCargo() }

val cargoNdkBuild = tasks.register<CargoNdkBuild>("cargoNdkBuild") {
    group = "build"
    description = "Builds libsmolvlm_ffi.so for ${androidAbis.joinToString()} with cargo-ndk."
    sources.from(rustSources)
    abis.set(androidAbis)
    platform.set(minAndroidApi)
    ndkVersion.set(libs.versions.ndk)
    ndkDirectory.set(androidComponents.sdkComponents.ndkDirectory)
    workspace.set(repoRoot)
    cargo.set(cargoExecutable)
    outputDirectory.set(layout.buildDirectory.dir("rust/jniLibs"))
}

val uniffiBindings = tasks.register<UniffiBindgen>("uniffiBindings") {
    group = "build"
    description = "Generates the Kotlin bindings from the arm64-v8a library."
    library.set(cargoNdkBuild.flatMap { it.outputDirectory.file("arm64-v8a/libsmolvlm_ffi.so") })
    config.from(
        repoRoot.resolve("bindings/uniffi-bindgen"),
        repoRoot.resolve("Cargo.lock"),
        repoRoot.resolve("bindings/ffi/uniffi.toml"),
    )
    workspace.set(repoRoot)
    cargo.set(cargoExecutable)
    outputDirectory.set(layout.buildDirectory.dir("generated/uniffi/kotlin"))
}

// ---- Unit tests ----------------------------------------------------------------------------
// `testDebugUnitTest` runs src/test on the host JVM, as mozilla/application-services does: the
// library built for the host by cargo, packed in a jar under JNA's resource folder for this OS
// and CPU (`linux-x86-64/libsmolvlm_ffi.so`, `darwin-aarch64/libsmolvlm_ffi.dylib`, …), where
// JNA finds it on the classpath; the desktop JNA jar brings libjnidispatch for the host. The
// bindings are the ones generated for the AAR (the same Rust API).

/** Where JNA looks for the library on this host's classpath: its folder and file name. */
data class HostLibrary(
    /** JNA's `Platform.RESOURCE_PREFIX`, e.g. `linux-x86-64`. */
    val resourcePrefix: String,
    /** The library's file name, e.g. `libsmolvlm_ffi.so`. */
    val fileName: String,
)

/** The [HostLibrary] of the computer running this build. */
fun hostLibrary(): HostLibrary {
    val os = System.getProperty("os.name").lowercase()
    val arch = when (val a = System.getProperty("os.arch").lowercase()) {
        "amd64", "x86_64" -> "x86-64"
        "aarch64", "arm64" -> "aarch64"
        else -> a
    }
    return when {
        os.startsWith("mac") || os.startsWith("darwin") -> HostLibrary("darwin-$arch", "libsmolvlm_ffi.dylib")
        os.startsWith("windows") -> HostLibrary("win32-$arch", "smolvlm_ffi.dll")
        else -> HostLibrary("linux-$arch", "libsmolvlm_ffi.so")
    }
}

/**
 * `cargo build --release -p smolvlm-ffi` for the host, copied to
 * [outputDirectory]/<JNA resource prefix>/<library>.
 */
abstract class CargoHostBuild : CargoBuild() {
    /** JNA's resource prefix for this host, e.g. `linux-x86-64`. */
    @get:Input
    abstract val resourcePrefix: Property<String>

    /** The library's file name on this host, e.g. `libsmolvlm_ffi.so`. */
    @get:Input
    abstract val libraryName: Property<String>

    /** Cargo's target folder (`$CARGO_TARGET_DIR`, else the workspace's `target`). */
    @get:Internal
    abstract val targetDirectory: DirectoryProperty

    /** Receives <prefix>/<library>. */
    @get:OutputDirectory
    abstract val outputDirectory: DirectoryProperty

    @TaskAction
    fun build() {
        runCargo(listOf("build", "--release", "--locked", "-p", "smolvlm-ffi"))
        val out = outputDirectory.get().asFile
        out.deleteRecursively()
        val built = targetDirectory.get().asFile.resolve("release/${libraryName.get()}")
        built.copyTo(out.resolve("${resourcePrefix.get()}/${libraryName.get()}"))
    }
}

/**
 * Writes the Kotlin blocks that follow `<!-- marker -->` lines in README.md into package
 * `dev.smolvlm.readme` (what tools/readme_example.py does for tools/test_bindings.sh), so the
 * tests compile and run exactly what the README shows.
 */
abstract class ReadmeExamples : DefaultTask() {
    /** README.md. */
    @get:InputFile
    @get:PathSensitive(PathSensitivity.NONE)
    abstract val readme: RegularFileProperty

    /** The markers, e.g. `readme-kotlin-example`; each gives one file. */
    @get:Input
    abstract val markers: ListProperty<String>

    /** Receives dev/smolvlm/readme/<Marker>.kt. */
    @get:OutputDirectory
    abstract val outputDirectory: DirectoryProperty

    @TaskAction
    fun extract() {
        val text = readme.get().asFile.readText()
        val dir = outputDirectory.get().asFile.resolve("dev/smolvlm/readme")
        dir.deleteRecursively()
        dir.mkdirs()
        for (marker in markers.get()) {
            val after = text.substringAfter("<!-- $marker -->", missingDelimiterValue = "")
            if (after.isEmpty()) throw GradleException("README.md has no <!-- $marker -->")
            val code = after.split("```")[1].substringAfter('\n') // drop the ```kotlin line
            val name = marker.split('-').joinToString("") { part -> part.replaceFirstChar(Char::uppercase) }
            dir.resolve("$name.kt").writeText("package dev.smolvlm.readme\n\n$code")
        }
    }
}

val host = hostLibrary()

val cargoHostBuild = tasks.register<CargoHostBuild>("cargoHostBuild") {
    group = "build"
    description = "Builds libsmolvlm_ffi for this computer (the JVM unit tests load it)."
    sources.from(rustSources)
    resourcePrefix.set(host.resourcePrefix)
    libraryName.set(host.fileName)
    targetDirectory.set(System.getenv("CARGO_TARGET_DIR")?.let(::File) ?: repoRoot.resolve("target"))
    workspace.set(repoRoot)
    cargo.set(cargoExecutable)
    outputDirectory.set(layout.buildDirectory.dir("rust/host"))
}

val hostLibsForTests = tasks.register<Jar>("hostLibsForTests") {
    description = "Packs the host library where JNA looks for it on the classpath."
    from(cargoHostBuild)
    archiveBaseName.set("smolvlm-host-native")
    destinationDirectory.set(layout.buildDirectory.dir("rust/hostJar"))
}

val readmeExamples = tasks.register<ReadmeExamples>("readmeExamples") {
    description = "Extracts the README's Kotlin examples for the unit tests."
    readme.set(repoRoot.resolve("README.md"))
    markers.set(
        listOf(
            "readme-kotlin-example", "readme-kotlin-download", "readme-kotlin-live", "readme-kotlin-video",
            "readme-kotlin-android", "readme-kotlin-android-video",
        ),
    )
    outputDirectory.set(layout.buildDirectory.dir("generated/readme/kotlin"))
}

androidComponents {
    onVariants { variant ->
        variant.sources.jniLibs?.addGeneratedSourceDirectory(cargoNdkBuild, CargoNdkBuild::outputDirectory)
        variant.sources.kotlin?.addGeneratedSourceDirectory(uniffiBindings, UniffiBindgen::outputDirectory)
        (variant as? HasUnitTest)?.unitTest?.sources?.kotlin?.addGeneratedSourceDirectory(
            readmeExamples,
            ReadmeExamples::outputDirectory,
        )
    }
}

tasks.withType<Test>().configureEach {
    systemProperty("smolvlm.fixtures", repoRoot.resolve("tests/fixtures").absolutePath)
    // As in tools/test_bindings.sh: a fixed, pre-touched heap, because the live camera soak test
    // measures the growth of the process RSS (a heap that grows would hide what the native side
    // does). That test reads /proc/self/status: the suite runs on Linux hosts.
    minHeapSize = "128m"
    maxHeapSize = "128m"
    jvmArgs("-XX:+AlwaysPreTouch")
}

dependencies {
    // JNA's aar: the classes plus libjnidispatch.so for the Android ABIs (16 KB-aligned since 5.17).
    api(variantOf(libs.jna) { artifactType("aar") })
    // Flow and suspend functions are part of the API.
    api(libs.kotlinx.coroutines.android)
    // The CameraX converters (src/android) compile against camera-core; apps without CameraX
    // never load them.
    compileOnly(libs.androidx.camera.core)

    // The host JVM: JNA's plain jar (libjnidispatch for desktops) and the host build of the library.
    testImplementation(libs.jna)
    testRuntimeOnly(files(hostLibsForTests))
    testImplementation(libs.junit)
    testImplementation(libs.kotlin.test.junit)
}

// ---- Publishing ----------------------------------------------------------------------------
// `./gradlew :sdk:publishToMavenLocal` puts dev.smolvlm:smolvlm-android:<smolvlmVersion> (with
// its sources jar) into ~/.m2; see README.md, "Android".

afterEvaluate {
    publishing {
        publications {
            register<MavenPublication>("release") {
                groupId = "dev.smolvlm"
                artifactId = "smolvlm-android"
                version = providers.gradleProperty("smolvlmVersion").getOrElse("0.1.0")
                from(components["release"])
                pom {
                    name.set("SmolVLM for Android")
                    description.set("Offline visual question answering with SmolVLM models, on the phone's CPU.")
                    licenses {
                        license {
                            name.set("Apache-2.0")
                            url.set("https://www.apache.org/licenses/LICENSE-2.0")
                        }
                    }
                }
            }
        }
    }
}
