//! `cargo uniffi-bindgen generate --library target/<profile>/libsmolvlm_ffi.so --language kotlin|swift
//! --out-dir DIR`: uniffi's own command line, built from the workspace's pinned uniffi.

fn main() {
    uniffi::uniffi_bindgen_main()
}
