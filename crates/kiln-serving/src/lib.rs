//! Model serving.
pub mod onnx;
pub mod protocol;
