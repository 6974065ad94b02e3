//! Why a record could not be decoded, and the bounded `error_type` label value of each case
//! (docs/wire-format.md).

use crate::table::label_enum;

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty message payload")]
    Empty,
    #[error("payload size {size} bytes exceeds maximum {max} bytes")]
    PayloadTooLarge { size: usize, max: usize },
    #[error("zstd data decompresses to more than the maximum {max} bytes")]
    DecompressedTooLarge { max: usize },
    #[error("zstd decompression failed: {0}")]
    Decompress(String),
    #[error("invalid protobuf DashStreamMessage: {0}")]
    InvalidProtobuf(String),
}

label_enum! {
    /// The `error_type` label of a [`DecodeError`] (`metrics::LegacyErrorType` holds the original's three).
    pub enum ErrorReason {
        Empty => "empty",
        PayloadTooLarge => "payload_too_large",
        DecompressedTooLarge => "decompressed_too_large",
        Decompress => "decompress",
        InvalidProtobuf => "invalid_protobuf",
    }
}

impl DecodeError {
    /// The bounded reason of this error (its `Display` is the label value).
    pub fn reason(&self) -> ErrorReason {
        match self {
            DecodeError::Empty => ErrorReason::Empty,
            DecodeError::PayloadTooLarge { .. } => ErrorReason::PayloadTooLarge,
            DecodeError::DecompressedTooLarge { .. } => ErrorReason::DecompressedTooLarge,
            DecodeError::Decompress(_) => ErrorReason::Decompress,
            DecodeError::InvalidProtobuf(_) => ErrorReason::InvalidProtobuf,
        }
    }
}
