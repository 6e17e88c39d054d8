//! gzip, bounded: the one decompression both protocols use.

use std::io::Read;

/// Why a body could not be decompressed.
#[derive(Debug)]
pub(crate) enum GunzipError {
    /// It decompresses to more than the limit.
    TooLarge,
    /// It is not gzip.
    Invalid(std::io::Error),
}

/// Decompresses at most `max` bytes, so a small "zip bomb" cannot make the
/// receiver allocate without bound.
pub(crate) fn gunzip(compressed: impl Read, max: usize) -> Result<Vec<u8>, GunzipError> {
    let mut out = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::MultiGzDecoder::new(compressed)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(GunzipError::Invalid)?;
    if out.len() > max {
        return Err(GunzipError::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn decompresses_up_to_the_limit_and_no_further() {
        let body = gzip(&[7u8; 1000]);
        assert_eq!(gunzip(&body[..], 1000).unwrap(), vec![7u8; 1000]);
        assert!(matches!(gunzip(&body[..], 999), Err(GunzipError::TooLarge)));
        assert!(matches!(
            gunzip(&b"not gzip"[..], 1000),
            Err(GunzipError::Invalid(_))
        ));
    }
}
