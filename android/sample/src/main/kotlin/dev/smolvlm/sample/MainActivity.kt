package dev.smolvlm.sample

import android.Manifest
import android.content.Intent
import android.content.pm.PackageManager
import android.net.Uri
import android.os.Bundle
import android.provider.Settings
import android.text.method.ScrollingMovementMethod
import android.text.format.Formatter
import android.view.View
import android.view.inputmethod.EditorInfo
import android.widget.Button
import android.widget.EditText
import android.widget.LinearLayout
import android.widget.ProgressBar
import android.widget.TextView
import androidx.activity.ComponentActivity
import androidx.activity.enableEdgeToEdge
import androidx.activity.result.contract.ActivityResultContracts
import androidx.activity.viewModels
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.Preview
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.lifecycle.awaitInstance
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import androidx.core.view.ViewCompat
import androidx.core.view.WindowInsetsCompat
import androidx.lifecycle.Lifecycle
import androidx.lifecycle.lifecycleScope
import androidx.lifecycle.repeatOnLifecycle
import dev.smolvlm.sample.state.CameraState
import dev.smolvlm.sample.state.ModelChoice
import dev.smolvlm.sample.state.Preset
import dev.smolvlm.sample.state.Problem
import dev.smolvlm.sample.state.ProblemKind
import dev.smolvlm.sample.state.SetupState
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.launch
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * The one screen: the model picker with download progress until a model is ready, then the
 * camera with its live caption, numbers, ask mode and Stop. Thin on purpose: the state lives in
 * [SmolViewModel]; this class draws it, asks for the camera permission, binds CameraX to its own
 * lifecycle and forwards frames, clicks and lifecycle events.
 */
class MainActivity : ComponentActivity() {
    private val vm: SmolViewModel by viewModels()

    /** The analyzer's thread: frames are copied there (a memcpy) and handed on, never converted. */
    private lateinit var analysisExecutor: ExecutorService
    private var cameraBound = false
    /** Why the camera could not be started, shown with the camera state's own problems. */
    private var cameraError: String? = null
    private var shownChoices: List<ModelChoice>? = null

    private lateinit var overlay: View
    private lateinit var preview: PreviewView
    private lateinit var modelScreen: View
    private lateinit var modelList: LinearLayout
    private lateinit var freeSpace: TextView
    private lateinit var setupStatus: TextView
    private lateinit var setupProgress: ProgressBar
    private lateinit var setupProblem: TextView
    private lateinit var setupRetry: Button
    private lateinit var setupCancel: Button
    private lateinit var permissionPanel: View
    private lateinit var permissionText: TextView
    private lateinit var permissionButton: Button
    private lateinit var cameraPanel: View
    private lateinit var caption: TextView
    private lateinit var stats: TextView
    private lateinit var askedQuestion: TextView
    private lateinit var answer: TextView
    private lateinit var cameraProblem: TextView
    private lateinit var presets: List<Button>
    private lateinit var question: EditText
    private lateinit var askButton: Button
    private lateinit var stopButton: Button
    private lateinit var liveButton: Button

    private val cameraPermission = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) {
            showPermissionPanel(false)
            bindCamera()
        } else {
            // After a denial the system shows no rationale only when the user chose "don't ask
            // again" (or the policy forbids it): then only the settings screen can grant it.
            showPermissionPanel(true, permanently = !shouldShowRequestPermissionRationale(Manifest.permission.CAMERA))
        }
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        enableEdgeToEdge()
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        findViews()
        analysisExecutor = Executors.newSingleThreadExecutor()

        // Edge to edge: the preview runs under the system bars; the panels keep clear of them
        // and of the keyboard.
        ViewCompat.setOnApplyWindowInsetsListener(find(R.id.root)) { _, insets ->
            val bars = insets.getInsets(WindowInsetsCompat.Type.systemBars() or WindowInsetsCompat.Type.ime())
            overlay.setPadding(bars.left, bars.top, bars.right, bars.bottom)
            WindowInsetsCompat.CONSUMED
        }

        setupRetry.setOnClickListener { vm.setup.retry() }
        setupCancel.setOnClickListener { vm.setup.cancel() }
        find<Button>(R.id.change_model).setOnClickListener { vm.setup.cancel() }
        presets.zip(Preset.entries).forEach { (button, preset) -> button.setOnClickListener { vm.camera.ask(preset.question) } }
        askButton.setOnClickListener { askTyped() }
        question.setOnEditorActionListener { _, action, _ -> (action == EditorInfo.IME_ACTION_SEND).also { if (it) askTyped() } }
        answer.movementMethod = ScrollingMovementMethod() // a long answer scrolls within its lines
        stopButton.setOnClickListener { vm.camera.stop() }
        liveButton.setOnClickListener { vm.camera.backToLive() }

        lifecycleScope.launch {
            repeatOnLifecycle(Lifecycle.State.STARTED) {
                launch { vm.setup.state.collect { renderSetup(it) } }
                launch { vm.camera.state.collect { renderCamera(it) } }
            }
        }
    }

    override fun onStart() {
        super.onStart()
        vm.onForeground()
    }

    override fun onStop() {
        vm.onBackground()
        super.onStop()
    }

    override fun onTrimMemory(level: Int) {
        super.onTrimMemory(level)
        vm.onTrimMemory(level)
    }

    override fun onDestroy() {
        analysisExecutor.shutdown()
        super.onDestroy()
    }

    private fun findViews() {
        overlay = find(R.id.overlay)
        preview = find(R.id.preview)
        modelScreen = find(R.id.model_screen)
        modelList = find(R.id.model_list)
        freeSpace = find(R.id.free_space)
        setupStatus = find(R.id.setup_status)
        setupProgress = find(R.id.setup_progress)
        setupProblem = find(R.id.setup_problem)
        setupRetry = find(R.id.setup_retry)
        setupCancel = find(R.id.setup_cancel)
        permissionPanel = find(R.id.permission_panel)
        permissionText = find(R.id.permission_text)
        permissionButton = find(R.id.permission_button)
        cameraPanel = find(R.id.camera_panel)
        caption = find(R.id.caption)
        stats = find(R.id.stats)
        askedQuestion = find(R.id.asked_question)
        answer = find(R.id.answer)
        cameraProblem = find(R.id.camera_problem)
        presets = listOf(R.id.preset_describe, R.id.preset_read, R.id.preset_what).map { find<Button>(it) }
        question = find(R.id.question)
        askButton = find(R.id.ask)
        stopButton = find(R.id.stop)
        liveButton = find(R.id.back_to_live)
    }

    /**
     * The layout's view [id] as a [V]. (Android 8's findViewById is generic; API 23's, which
     * tools/test_bindings.sh type-checks against, returns a plain View: this compiles with both.)
     */
    @Suppress("UNCHECKED_CAST")
    private fun <V : View> find(id: Int): V {
        val view: View = findViewById(id)
        return view as V
    }

    private fun askTyped() {
        vm.camera.ask(question.text.toString())
        question.text.clear()
    }

    // ---- the model screen ----------------------------------------------------------------

    private fun renderSetup(state: SetupState) {
        val ready = state is SetupState.Ready
        modelScreen.visibility = if (ready) View.GONE else View.VISIBLE
        cameraPanel.visibility = if (ready) View.VISIBLE else View.GONE
        if (ready) ensureCameraPermission() else permissionPanel.visibility = View.GONE
        modelList.visibility = if (state is SetupState.Choosing) View.VISIBLE else View.GONE
        setupProgress.visibility = if (state is SetupState.Downloading || state is SetupState.Loading || state is SetupState.Unloaded) View.VISIBLE else View.GONE
        setupCancel.visibility = if (state is SetupState.Downloading || state is SetupState.Loading || state is SetupState.Failed) View.VISIBLE else View.GONE
        setupCancel.setText(if (state is SetupState.Failed) R.string.back_to_models else R.string.cancel)
        setupRetry.visibility = if (state is SetupState.Failed) View.VISIBLE else View.GONE
        setupProblem.visibility = if (state is SetupState.Failed) View.VISIBLE else View.GONE
        when (state) {
            is SetupState.Choosing -> {
                setupStatus.setText(R.string.setup_choose)
                freeSpace.text = getString(R.string.free_space, size(state.freeBytes))
                if (state.choices != shownChoices) showChoices(state.choices)
            }
            is SetupState.Downloading -> {
                setupStatus.text = getString(R.string.setup_downloading, state.model.name, size(state.bytesDone), size(state.bytesTotal))
                setupProgress.isIndeterminate = state.bytesTotal <= 0
                setupProgress.progress = state.percent
            }
            is SetupState.Loading -> {
                setupStatus.text = getString(R.string.setup_loading, state.model.name)
                setupProgress.isIndeterminate = false
                setupProgress.progress = (state.fraction * 100).toInt()
            }
            is SetupState.Unloaded -> {
                setupStatus.text = getString(R.string.setup_loading, state.model.name)
                setupProgress.isIndeterminate = true
            }
            is SetupState.Failed -> {
                setupStatus.text = getString(R.string.setup_failed, state.model.name)
                setupProblem.text = describe(state.problem)
            }
            is SetupState.Ready -> {}
        }
    }

    private fun showChoices(choices: List<ModelChoice>) {
        shownChoices = choices
        modelList.removeAllViews()
        for (choice in choices) {
            val m = choice.model
            val note = when {
                !choice.fitsMemory -> getString(R.string.choice_too_big, size(m.memoryBytes))
                !choice.fitsStorage -> getString(R.string.choice_no_space, size(choice.bytesToFetch))
                choice.bytesToFetch == 0L -> getString(R.string.choice_downloaded)
                else -> getString(R.string.choice_download, size(choice.bytesToFetch))
            }
            modelList.addView(Button(this).apply {
                text = getString(R.string.choice, m.name, note, size(m.memoryBytes))
                setAllCaps(false)
                // A model too big for the device's memory is shown but not offered.
                isEnabled = choice.fitsMemory
                setOnClickListener { vm.choose(m) }
            })
        }
    }

    // ---- the camera screen ---------------------------------------------------------------

    private fun renderCamera(state: CameraState) {
        caption.text = if (state.caption.isEmpty() && state.running) getString(R.string.caption_waiting) else state.caption
        stats.text = state.numbers?.let { getString(R.string.stats_line, it.firstTokenMs, it.tokensPerSecond, it.memoryMb) } ?: ""
        val ask = state.ask
        val streaming = ask?.streaming == true
        askedQuestion.visibility = if (ask != null) View.VISIBLE else View.GONE
        answer.visibility = if (ask != null) View.VISIBLE else View.GONE
        if (ask != null) {
            askedQuestion.text = ask.question
            answer.text = when {
                ask.stopped -> getString(R.string.answer_stopped, ask.answer)
                ask.answer.isEmpty() && streaming -> getString(R.string.answer_waiting)
                else -> ask.answer
            }
        }
        stopButton.visibility = if (streaming) View.VISIBLE else View.GONE
        liveButton.visibility = if (ask != null && !streaming) View.VISIBLE else View.GONE
        val canAsk = state.running && !streaming
        (presets + askButton).forEach { it.isEnabled = canAsk }
        val problem = state.problem?.let(::describe) ?: cameraError
        cameraProblem.visibility = if (problem != null) View.VISIBLE else View.GONE
        cameraProblem.text = problem
    }

    private fun ensureCameraPermission() {
        when {
            ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED -> {
                showPermissionPanel(false)
                bindCamera()
            }
            !vm.cameraPermissionAsked -> {
                vm.cameraPermissionAsked = true
                cameraPermission.launch(Manifest.permission.CAMERA)
            }
            else -> showPermissionPanel(true, permanently = !shouldShowRequestPermissionRationale(Manifest.permission.CAMERA))
        }
    }

    private fun showPermissionPanel(show: Boolean, permanently: Boolean = false) {
        permissionPanel.visibility = if (show) View.VISIBLE else View.GONE
        if (!show) return
        permissionText.setText(if (permanently) R.string.permission_denied_permanently else R.string.permission_needed)
        permissionButton.setText(if (permanently) R.string.open_settings else R.string.grant_permission)
        permissionButton.setOnClickListener {
            if (permanently) {
                // Back from the settings screen, onStart → render → ensureCameraPermission sees the grant.
                startActivity(Intent(Settings.ACTION_APPLICATION_DETAILS_SETTINGS, Uri.fromParts("package", packageName, null)))
            } else {
                cameraPermission.launch(Manifest.permission.CAMERA)
            }
        }
    }

    /**
     * Binds the preview and the analysis to this activity's lifecycle, once per activity: CameraX
     * stops the camera in onStop and starts it again in onStart by itself.
     */
    private fun bindCamera() {
        if (cameraBound) return
        cameraBound = true
        lifecycleScope.launch {
            try {
                val provider = ProcessCameraProvider.awaitInstance(applicationContext)
                val previewUseCase = Preview.Builder().build()
                previewUseCase.setSurfaceProvider(preview.surfaceProvider)
                // The newest frame only, as YUV planes the library reads directly (the default
                // 640×480 is plenty: a live frame is one 512-pixel view).
                val analysis = ImageAnalysis.Builder()
                    .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                    .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_YUV_420_888)
                    .build()
                // push() copies the planes (O(1) for the model: it never waits for it); the image
                // goes back to the camera right after, whatever happened.
                analysis.setAnalyzer(analysisExecutor) { image -> image.use { vm.push(it) } }
                provider.unbindAll()
                provider.bindToLifecycle(this@MainActivity, CameraSelector.DEFAULT_BACK_CAMERA, previewUseCase, analysis)
            } catch (e: CancellationException) {
                throw e
            } catch (e: Exception) {
                // No back camera, the camera service refused, CameraX could not start.
                cameraBound = false
                cameraError = getString(R.string.camera_failed, e.message ?: e.javaClass.simpleName)
                renderCamera(vm.camera.state.value)
            }
        }
    }

    // ---- text --------------------------------------------------------------------------------

    private fun size(bytes: Long): String = Formatter.formatShortFileSize(this, bytes)

    private fun describe(problem: Problem): String {
        val advice = when (problem.kind) {
            ProblemKind.NO_SPACE -> getString(R.string.problem_no_space, size(problem.neededBytes), size(problem.availableBytes))
            ProblemKind.NO_MEMORY -> getString(R.string.problem_no_memory, size(problem.neededBytes), size(problem.availableBytes))
            ProblemKind.NETWORK -> getString(R.string.problem_network)
            ProblemKind.NOT_FOUND -> getString(R.string.problem_not_found)
            ProblemKind.NEEDS_TOKEN -> getString(R.string.problem_needs_token)
            ProblemKind.NO_ACCESS -> getString(R.string.problem_no_access)
            ProblemKind.CORRUPT_DOWNLOAD -> getString(R.string.problem_corrupt)
            ProblemKind.STORAGE -> getString(R.string.problem_storage)
            ProblemKind.MODEL_MISSING -> getString(R.string.problem_model_missing)
            ProblemKind.MODEL_INVALID -> getString(R.string.problem_model_invalid)
            ProblemKind.BAD_FRAME -> getString(R.string.problem_bad_frame)
            ProblemKind.TOO_LONG -> getString(R.string.problem_too_long)
            ProblemKind.UNEXPECTED -> getString(R.string.problem_unexpected)
        }
        return getString(R.string.problem_with_detail, advice, problem.detail)
    }
}
