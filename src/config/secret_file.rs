//! Secrets handed over as files (Docker secrets in `/run/secrets/`, systemd's `LoadCredential=`): the file
//! twin of a secret setting names a file read once, in the validating stage, whose content then stands for the
//! variable. The content never appears in a message: problems name the variable and the path only.

use std::io::Read;
use std::path::Path;

/// Largest secret file read; anything longer is refused rather than read without end (`/dev/zero`).
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// The content of a secret file without its trailing newline (`\n` or `\r\n`, once), or why it cannot be used.
pub fn read(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read the file: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read the file: {e}"))?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(format!("the file is larger than {MAX_SECRET_FILE_BYTES} bytes"));
    }
    let mut text = String::from_utf8(bytes).map_err(|_| "the file is not UTF-8 text".to_string())?;
    if text.ends_with("\r\n") {
        text.truncate(text.len() - 2);
    } else if text.ends_with('\n') {
        text.truncate(text.len() - 1);
    }
    if text.is_empty() {
        return Err("the file is empty".to_string());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(name: &str, content: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("dfe-secret-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    #[test]
    fn one_trailing_newline_is_removed() {
        assert_eq!(read(&file_with("lf", b"s3cr3t\n")).unwrap(), "s3cr3t");
        assert_eq!(read(&file_with("crlf", b"s3cr3t\r\n")).unwrap(), "s3cr3t");
        assert_eq!(read(&file_with("none", b"s3cr3t")).unwrap(), "s3cr3t");
        assert_eq!(read(&file_with("two", b"s3cr3t\n\n")).unwrap(), "s3cr3t\n");
        assert_eq!(read(&file_with("spaces", b" s3 cr3t \n")).unwrap(), " s3 cr3t ");
        assert_eq!(read(&file_with("cr", b"s3cr3t\r")).unwrap(), "s3cr3t\r");
    }

    #[test]
    fn empty_missing_oversized_and_binary_files_are_refused() {
        assert_eq!(read(&file_with("empty", b"")).unwrap_err(), "the file is empty");
        assert_eq!(read(&file_with("newline", b"\n")).unwrap_err(), "the file is empty");
        assert_eq!(read(&file_with("crlf-only", b"\r\n")).unwrap_err(), "the file is empty");
        assert_eq!(
            read(Path::new("/nonexistent/secret")).unwrap_err(),
            "cannot read the file: No such file or directory (os error 2)"
        );
        assert_eq!(read(&std::env::temp_dir()).unwrap_err(), "cannot read the file: Is a directory (os error 21)");
        let big = vec![b'x'; MAX_SECRET_FILE_BYTES as usize + 1];
        assert_eq!(read(&file_with("big", &big)).unwrap_err(), "the file is larger than 65536 bytes");
        let exact = vec![b'x'; MAX_SECRET_FILE_BYTES as usize];
        assert_eq!(read(&file_with("exact", &exact)).unwrap().len(), 65536);
        assert_eq!(read(&file_with("binary", b"\xff\xfe")).unwrap_err(), "the file is not UTF-8 text");
    }
}
