//! Safetensors checkpoints read tensor by tensor with positioned reads, instead of being
//! memory-mapped.
//!
//! A memory-mapped file keeps every page that was touched resident (file-backed pages count in
//! the process's RSS until the map goes away), so quantizing a whole checkpoint from a map holds
//! the entire file in memory at the end of loading. Here only the headers are kept; each tensor
//! is read into a buffer of its own when asked for, and a matrix that is quantized is read, widened
//! to f32 and quantized a few rows at a time, so loading never holds more than the quantized
//! matrix plus a small window of its source.
//!
//! The headers are validated as `safetensors::SafeTensors::deserialize` (and hence candle's
//! memory-mapped loader) validates them, and the values go through candle's own safetensors
//! conversion: the tensors are bit for bit those of [`candle_nn::VarBuilder::from_mmaped_safetensors`].

use candle_core::quantized::k_quants::{BlockQ4K, BlockQ8_0, GgmlType};
use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::safetensors::Load;
use candle_core::{DType, Device, Error, Result, Shape, Tensor};
use safetensors::tensor::{Metadata, TensorInfo, TensorView};
use safetensors::SafeTensorError;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Largest JSON header accepted (100 MB), the safetensors crate's own limit: the header is read
/// whole into memory (only after its length is checked against the file's), and a checkpoint's
/// header is a few hundred bytes per tensor.
const MAX_HEADER_SIZE: usize = 100_000_000;
/// Bytes of f32 rows widened at a time when quantizing a matrix.
const QUANT_WINDOW_BYTES: usize = 1 << 20;

/// One safetensors file: its open handle and where its data section starts.
struct StFile {
    path: PathBuf,
    /// Read with seek + read_exact; the lock keeps the pair atomic if several threads read.
    file: Mutex<File>,
    /// Byte offset of the data section (8 + header length).
    data_start: u64,
}

/// The tensors of one or more safetensors files (a checkpoint or its shards), read on demand.
pub(crate) struct SafetensorsFiles {
    files: Vec<StFile>,
    /// Tensor name -> (file index, dtype, shape, data offsets within the file's data section).
    tensors: HashMap<String, (usize, TensorInfo)>,
}

impl SafetensorsFiles {
    /// Opens `paths` and validates their headers. A name found in several files is taken from the
    /// last one (as candle's multi-file loader does). An error names the file at fault.
    pub(crate) fn open(paths: &[PathBuf]) -> std::result::Result<Self, (PathBuf, Error)> {
        let mut files = Vec::with_capacity(paths.len());
        let mut tensors = HashMap::new();
        for (index, path) in paths.iter().enumerate() {
            let (file, metadata) = open_file(path).map_err(|e| (path.clone(), e))?;
            for (name, info) in metadata.tensors() {
                tensors.insert(name, (index, info.clone()));
            }
            files.push(file);
        }
        Ok(Self { files, tensors })
    }

    /// Whether the tensor `name` exists.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The entry of `name`, checked to have `shape`.
    fn entry(&self, name: &str, shape: &Shape) -> Result<(&StFile, &TensorInfo)> {
        let (index, info) = self.tensors.get(name).ok_or_else(|| Error::CannotFindTensor { path: name.to_string() })?;
        if info.shape.as_slice() != shape.dims() {
            return Err(Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: shape.clone(),
                got: info.shape.clone().into(),
            });
        }
        Ok((&self.files[*index], info))
    }

    /// The tensor `name`, checked to have `shape`, as f32 on `device`.
    pub(crate) fn tensor_f32(&self, name: &str, shape: &Shape, device: &Device) -> Result<Tensor> {
        let (file, info) = self.entry(name, shape)?;
        let (start, end) = info.data_offsets;
        let mut bytes = vec![0u8; end - start];
        file.read_at(start, &mut bytes)?;
        let t = TensorView::new(info.dtype, info.shape.clone(), &bytes)?.load(&Device::Cpu)?;
        drop(bytes);
        t.to_dtype(DType::F32)?.to_device(device)
    }

    /// The matrix `name` `[rows, cols]` quantized to `dtype` (Q8_0 or Q4_K), converted a window of
    /// rows at a time. The blocks are those of `QTensor::quantize` on the whole f32 matrix: both
    /// formats quantize each block on its own, and a window holds whole rows.
    pub(crate) fn quantized(&self, name: &str, rows: usize, cols: usize, dtype: GgmlDType) -> Result<QTensor> {
        match dtype {
            GgmlDType::Q8_0 => self.quantize_rows::<BlockQ8_0>(name, rows, cols),
            GgmlDType::Q4K => self.quantize_rows::<BlockQ4K>(name, rows, cols),
            other => candle_core::bail!("quantizing at load to {other:?} is not supported"),
        }
    }

    fn quantize_rows<T: GgmlType + Send + Sync + 'static>(&self, name: &str, rows: usize, cols: usize) -> Result<QTensor> {
        let shape = Shape::from((rows, cols));
        let (file, info) = self.entry(name, &shape)?;
        if !cols.is_multiple_of(T::BLCK_SIZE) {
            candle_core::bail!("{name}: width {cols} is not a multiple of the block size {}", T::BLCK_SIZE)
        }
        let blocks_per_row = cols / T::BLCK_SIZE;
        let row_bytes = (info.data_offsets.1 - info.data_offsets.0) / rows.max(1);
        let window = (QUANT_WINDOW_BYTES / (cols * 4).max(1)).clamp(1, rows.max(1));
        let mut blocks = vec![T::zeros(); rows * blocks_per_row];
        let mut bytes = vec![0u8; window * row_bytes];
        for (w, out) in blocks.chunks_mut(window * blocks_per_row).enumerate() {
            let n = out.len() / blocks_per_row;
            let raw = &mut bytes[..n * row_bytes];
            file.read_at(info.data_offsets.0 + w * window * row_bytes, raw)?;
            let x = TensorView::new(info.dtype, vec![n, cols], raw)?.load(&Device::Cpu)?.to_dtype(DType::F32)?;
            T::from_float(&x.flatten_all()?.to_vec1::<f32>()?, out);
        }
        QTensor::new(QStorage::Cpu(Box::new(blocks)), shape)
    }
}

impl StFile {
    /// Reads `buf.len()` bytes at `offset` within the data section.
    fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        let mut file = self.file.lock().map_err(|_| Error::Msg("a weight file reader panicked".into()))?;
        file.seek(SeekFrom::Start(self.data_start + offset as u64))
            .and_then(|_| file.read_exact(buf))
            .map_err(|e| Error::from(e).with_path(&self.path))
    }
}

/// Opens one file and reads and validates its header, as `SafeTensors::deserialize` does: the
/// header length, its JSON, contiguous offsets matching each tensor's dtype and shape, and a data
/// section that ends exactly at the end of the file. The caller names the file in the error.
fn open_file(path: &Path) -> Result<(StFile, Metadata)> {
    let st = |e: SafeTensorError| Error::from(e);
    // Not a device or a pipe: opening a pipe blocks, and a device has no length to check.
    if !std::fs::metadata(path)?.is_file() {
        candle_core::bail!("not a regular file")
    }
    let mut file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut n = [0u8; 8];
    if file_len < 8 {
        return Err(st(SafeTensorError::HeaderTooSmall));
    }
    file.read_exact(&mut n)?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER_SIZE as u64 {
        return Err(st(SafeTensorError::HeaderTooLarge));
    }
    if 8 + n > file_len {
        return Err(st(SafeTensorError::InvalidHeaderLength));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header)?;
    let text = std::str::from_utf8(&header).map_err(|e| st(SafeTensorError::InvalidHeader(e)))?;
    let metadata: Metadata = serde_json::from_str(text).map_err(|e| st(SafeTensorError::InvalidHeaderDeserialization(e)))?;
    // Checked: the offsets of a crafted header can add up to nearly 2^64.
    if (metadata.data_len() as u64).checked_add(8 + n) != Some(file_len) {
        return Err(st(SafeTensorError::MetadataIncompleteBuffer));
    }
    Ok((StFile { path: path.to_path_buf(), file: Mutex::new(file), data_start: 8 + n }, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary safetensors file with a bf16 matrix `m` `[1300, 512]` (three quantization
    /// windows, the last one partial) and an f32 vector `v`.
    fn sample(tag: &str) -> (PathBuf, Tensor, Tensor) {
        let dev = Device::Cpu;
        let m = Tensor::randn(0f32, 1.0, (1300, 512), &dev).unwrap().to_dtype(DType::BF16).unwrap();
        let v = Tensor::randn(0f32, 1.0, 7, &dev).unwrap();
        let path = std::env::temp_dir().join(format!("smolvlm-stfiles-{tag}-{}.safetensors", std::process::id()));
        let tensors: HashMap<String, Tensor> = [("m".to_string(), m.clone()), ("v".to_string(), v.clone())].into();
        candle_core::safetensors::save(&tensors, &path).unwrap();
        (path, m, v)
    }

    #[test]
    fn windows_quantize_like_the_whole_matrix() {
        let (path, m, v) = sample("quant");
        let files = SafetensorsFiles::open(std::slice::from_ref(&path)).unwrap();
        let m32 = m.to_dtype(DType::F32).unwrap();
        for dt in [GgmlDType::Q8_0, GgmlDType::Q4K] {
            let got = files.quantized("m", 1300, 512, dt).unwrap();
            let want = QTensor::quantize(&m32, dt).unwrap();
            assert_eq!(got.shape(), want.shape());
            assert!(got.data().unwrap() == want.data().unwrap(), "{dt:?} blocks differ");
        }
        let dense = files.tensor_f32("m", &Shape::from((1300, 512)), &Device::Cpu).unwrap();
        let d = (dense - &m32).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(d, 0.0);
        let got = files.tensor_f32("v", &Shape::from(7), &Device::Cpu).unwrap();
        assert_eq!(got.to_vec1::<f32>().unwrap(), v.to_vec1::<f32>().unwrap());
        // Wrong shape, unknown name, unsupported target: errors, not panics.
        assert!(files.tensor_f32("v", &Shape::from(8), &Device::Cpu).unwrap_err().to_string().contains("shape mismatch"));
        assert!(files.quantized("m", 1300, 256, GgmlDType::Q8_0).is_err());
        assert!(files.tensor_f32("w", &Shape::from(7), &Device::Cpu).is_err());
        assert!(files.quantized("m", 1300, 512, GgmlDType::Q4_1).is_err());
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn bad_headers_are_errors_naming_the_file() {
        let (path, _, _) = sample("bad");
        let good = std::fs::read(&path).unwrap();
        let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("too short", good[..5].to_vec()),
            ("truncated data", good[..good.len() - 1].to_vec()),
            ("extra data", [good.as_slice(), &[0]].concat()),
            ("header past the end", [&(good.len() as u64).to_le_bytes()[..], &good[8..]].concat()),
            ("huge header", [&u64::MAX.to_le_bytes()[..], &good[8..]].concat()),
        ];
        let mut not_json = good.clone();
        not_json[8] = b'[';
        cases.push(("not JSON", not_json));
        let mut not_utf8 = good.clone();
        not_utf8[8 + n / 2] = 0xff;
        cases.push(("not UTF-8", not_utf8));
        for (what, bytes) in cases {
            std::fs::write(&path, bytes).unwrap();
            match SafetensorsFiles::open(std::slice::from_ref(&path)) {
                Err((p, _)) => assert_eq!(p, path, "{what}"),
                Ok(_) => panic!("{what}: accepted"),
            }
        }
        std::fs::remove_file(&path).ok();
        let missing = path.with_extension("missing");
        assert!(matches!(SafetensorsFiles::open(std::slice::from_ref(&missing)), Err((p, _)) if p == missing));
    }
}
