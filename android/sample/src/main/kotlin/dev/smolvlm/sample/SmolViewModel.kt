package dev.smolvlm.sample

import android.app.ActivityManager
import android.app.Application
import android.content.ComponentCallbacks2
import android.content.Context
import androidx.camera.core.ImageProxy
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import dev.smolvlm.android.toFrame
import dev.smolvlm.ffi.CatalogModel
import dev.smolvlm.sample.state.LiveCaptioning
import dev.smolvlm.sample.state.ModelSetup
import dev.smolvlm.sample.state.SetupState
import kotlinx.coroutines.launch
import java.io.File

/**
 * Owns the model and the live session, so both survive rotation; the activity only draws
 * [setup]'s and [camera]'s state and forwards clicks, lifecycle events and camera frames.
 *
 * The model loads on a background dispatcher inside [ModelSetup] (a missing or broken model
 * ends as a `Failed` state, never an exception); the live session opens whenever the model is
 * ready and the app is visible. Memory: the live session is closed when the app is hidden and
 * the system asks for memory, the model too once the app is in the background list; both come
 * back when the app does. [onCleared] closes everything.
 */
class SmolViewModel(application: Application) : AndroidViewModel(application) {
    private val prefs = application.getSharedPreferences("smolvlm-sample", Context.MODE_PRIVATE)

    /** Choosing, downloading and loading the model. */
    val setup = ModelSetup(
        viewModelScope,
        File(application.filesDir, "models"),
        deviceMemoryBytes = ActivityManager.MemoryInfo().also {
            (application.getSystemService(Context.ACTIVITY_SERVICE) as ActivityManager).getMemoryInfo(it)
        }.totalMem,
    )

    /** Live captions and questions about a frozen frame. */
    val camera = LiveCaptioning(viewModelScope)

    /** Whether the camera permission has been asked for in this run (a denial is then final until settings). */
    var cameraPermissionAsked = false

    private var visible = false

    init {
        viewModelScope.launch {
            setup.state.collect { state ->
                if (state is SetupState.Ready) {
                    prefs.edit().putString(KEY_MODEL, state.model.name).apply()
                    if (visible) camera.open(state.vlm)
                } else if (camera.isOpen) {
                    camera.close()
                }
            }
        }
        // The model picked last time is loaded again at once (found on disk, or resumed).
        prefs.getString(KEY_MODEL, null)?.let { name -> setup.catalog.firstOrNull { it.name == name } }?.let(setup::start)
    }

    /** Downloads and loads [model] (the user picked it). */
    fun choose(model: CatalogModel) = setup.start(model)

    /** Hands a camera frame to the live session; called on the analyzer's thread. Close [image] afterwards. */
    fun push(image: ImageProxy) = camera.push(image.imageInfo.timestamp / 1_000_000) { image.toFrame() }

    /** The activity is visible (`onStart`): reload what memory pressure took, caption again. */
    fun onForeground() {
        visible = true
        camera.setForeground(true)
        when (val state = setup.state.value) {
            is SetupState.Unloaded -> setup.reload()
            is SetupState.Ready -> if (!camera.isOpen) camera.open(state.vlm)
            else -> {}
        }
    }

    /** The activity is hidden (`onStop`): no more captions until [onForeground]. */
    fun onBackground() {
        visible = false
        camera.setForeground(false)
    }

    /**
     * The system is short of memory ([level] from `onTrimMemory`). Once the UI is hidden the
     * live session goes (its cache and frozen frame); once the app is in the background list,
     * where the low-memory killer picks the biggest processes first, the model goes too
     * (`largeHeap` would not help: the weights are native memory). The library has no call to
     * drop its image cache alone; closing the model frees it with the weights.
     */
    fun onTrimMemory(level: Int) {
        if (level >= ComponentCallbacks2.TRIM_MEMORY_UI_HIDDEN) camera.close()
        if (level >= ComponentCallbacks2.TRIM_MEMORY_BACKGROUND) setup.unload()
    }

    override fun onCleared() {
        camera.close()
        setup.close()
    }

    private companion object {
        const val KEY_MODEL = "model"
    }
}
