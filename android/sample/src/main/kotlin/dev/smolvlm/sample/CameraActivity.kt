package dev.smolvlm.sample

import android.Manifest
import android.content.pm.PackageManager
import android.os.Bundle
import android.widget.Button
import android.widget.EditText
import android.widget.TextView
import androidx.appcompat.app.AppCompatActivity
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.Preview
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import androidx.lifecycle.lifecycleScope
import dev.smolvlm.Chat
import dev.smolvlm.SmolVLM
import dev.smolvlm.android.toImageInput
import dev.smolvlm.ffi.ImageInput
import dev.smolvlm.ffi.ImagePreset
import dev.smolvlm.ffi.LoadOptions
import dev.smolvlm.ffi.WeightPrecision
import kotlinx.coroutines.Job
import kotlinx.coroutines.launch
import java.util.concurrent.Executors
import java.util.concurrent.atomic.AtomicReference

/**
 * Camera screen: keeps the latest analysis frame (converted in place from the YUV planes) and,
 * on "Ask", streams the model's answer about it. Pressing "Ask" again cancels a running answer.
 * The model folder is expected in the app's files dir (`adb push` a SmolVLM checkpoint there).
 */
class CameraActivity : AppCompatActivity() {
    private var vlm: SmolVLM? = null
    private var chat: Chat? = null
    private var answering: Job? = null
    private val latest = AtomicReference<ImageInput?>(null)
    private val analysisExecutor = Executors.newSingleThreadExecutor()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_camera)
        val answer = findViewById<TextView>(R.id.answer)
        lifecycleScope.launch {
            answer.text = "Loading the model…"
            // Camera frames: the fast preset (at most 2x2 tiles), weights in Q8_0 for a model this
            // size, and a context of 2048 tokens (each question is about one new frame).
            val options = LoadOptions(precision = WeightPrecision.AUTO, preset = ImagePreset.FAST, contextLength = 2048u)
            vlm = SmolVLM.load(filesDir.resolve("SmolVLM-256M-Instruct").path, options).also { chat = it.newChat() }
            answer.text = "Ready."
        }
        findViewById<Button>(R.id.ask).setOnClickListener {
            answering?.let { it.cancel(); answering = null; return@setOnClickListener }
            val frame = latest.get() ?: return@setOnClickListener
            val question = findViewById<EditText>(R.id.question).text.toString()
            val chat = chat ?: return@setOnClickListener
            answer.text = ""
            chat.reset() // each question is about a new frame
            answering = lifecycleScope.launch {
                try {
                    chat.ask(question, frame).collect { answer.append(it) }
                } finally {
                    answering = null
                }
            }
        }
        if (checkSelfPermission(Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) startCamera()
        else requestPermissions(arrayOf(Manifest.permission.CAMERA), 1)
    }

    override fun onRequestPermissionsResult(code: Int, permissions: Array<String>, results: IntArray) {
        super.onRequestPermissionsResult(code, permissions, results)
        if (results.firstOrNull() == PackageManager.PERMISSION_GRANTED) startCamera()
    }

    private fun startCamera() {
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener({
            val provider = future.get()
            val preview = Preview.Builder().build().also {
                it.surfaceProvider = findViewById<PreviewView>(R.id.preview).surfaceProvider
            }
            val analysis = ImageAnalysis.Builder()
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .build()
            analysis.setAnalyzer(analysisExecutor) { proxy ->
                proxy.use { latest.set(it.toImageInput()) }
            }
            provider.unbindAll()
            provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, preview, analysis)
        }, ContextCompat.getMainExecutor(this))
    }

    override fun onDestroy() {
        super.onDestroy()
        chat?.close()
        vlm?.close()
        analysisExecutor.shutdown()
    }
}
