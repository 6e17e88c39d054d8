//! The sidecar file `<file>.chain`: the checkpoints of one output file, one
//! JSON object per line, appended and never rewritten.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::checkpoint::Checkpoint;

/// What a sidecar's name adds to its file's name.
pub const SIDECAR_SUFFIX: &str = ".chain";

/// The end of a sidecar read first: a checkpoint of a few thousand lines.
const FIRST_WINDOW: u64 = 64 * 1024;

/// The sidecar of the output file `data`: `<data>.chain`.
pub fn sidecar_path(data: &Path) -> PathBuf {
    let mut name = data.as_os_str().to_owned();
    name.push(SIDECAR_SUFFIX);
    PathBuf::from(name)
}

/// The output file of the sidecar `sidecar`, if its name ends with `.chain`.
pub fn data_path(sidecar: &Path) -> Option<PathBuf> {
    let name = sidecar.file_name()?.to_str()?;
    let stem = name.strip_suffix(SIDECAR_SUFFIX)?;
    (!stem.is_empty()).then(|| sidecar.with_file_name(stem))
}

/// One line of a sidecar.
#[derive(Debug, Clone)]
pub struct SidecarEntry {
    /// Its line number in the sidecar, from 1.
    pub line: u64,
    /// The checkpoint, or why the line is not one.
    pub checkpoint: Result<Checkpoint, String>,
}

/// The end of a sidecar after its last `\n`: part of a checkpoint, left by
/// a crash while it was being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTail {
    /// Where it begins (the sidecar's length up to its last complete line).
    pub offset: u64,
    /// How many bytes it has.
    pub len: u64,
}

/// A whole sidecar, read.
#[derive(Debug, Clone, Default)]
pub struct Sidecar {
    /// Every complete line, in order.
    pub entries: Vec<SidecarEntry>,
    /// A torn last line, if any.
    pub torn: Option<TornTail>,
}

/// Reads every line of the sidecar at `path`.
pub fn read_sidecar(path: &Path) -> io::Result<Sidecar> {
    let bytes = std::fs::read(path)?;
    let mut sidecar = Sidecar::default();
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', &bytes) {
        let line = &bytes[start..end];
        sidecar.entries.push(SidecarEntry {
            line: sidecar.entries.len() as u64 + 1,
            checkpoint: Checkpoint::parse(line),
        });
        start = end + 1;
    }
    if start < bytes.len() {
        sidecar.torn = Some(TornTail {
            offset: start as u64,
            len: (bytes.len() - start) as u64,
        });
    }
    Ok(sidecar)
}

/// The end of a sidecar: its last complete line and a torn line after it.
#[derive(Debug, Clone, Default)]
pub struct SidecarEnd {
    /// The last complete line as a checkpoint (or why it is not one);
    /// `None` when the sidecar has no complete line.
    pub last: Option<Result<Checkpoint, String>>,
    /// A torn line after it, if any.
    pub torn: Option<TornTail>,
}

/// Reads the end of an open sidecar without reading the rest (sidecars of
/// files that never rotate grow without bound): a window at the end, grown
/// until it holds the last complete line. A torn tail is reported, not
/// removed.
pub fn read_sidecar_end(file: &mut File) -> io::Result<SidecarEnd> {
    let len = file.metadata()?.len();
    let mut window = FIRST_WINDOW;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::with_capacity((len - start) as usize);
        file.by_ref().take(len - start).read_to_end(&mut bytes)?;
        let last_newline = memchr::memrchr(b'\n', &bytes);
        let torn_from = last_newline.map_or(0, |i| i + 1);
        let torn =
            (torn_from < bytes.len() && (last_newline.is_some() || start == 0)).then(|| TornTail {
                offset: start + torn_from as u64,
                len: (bytes.len() - torn_from) as u64,
            });
        match last_newline {
            Some(end) => {
                let line_from = memchr::memrchr(b'\n', &bytes[..end]).map(|i| i + 1);
                if let Some(from) = line_from.or((start == 0).then_some(0)) {
                    return Ok(SidecarEnd {
                        last: Some(Checkpoint::parse(&bytes[from..end])),
                        torn,
                    });
                }
            }
            None if start == 0 => return Ok(SidecarEnd { last: None, torn }),
            None => {}
        }
        window = window.saturating_mul(4);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn sidecar_names_add_dot_chain() {
        assert_eq!(
            sidecar_path(Path::new("/a/audit.jsonl")),
            Path::new("/a/audit.jsonl.chain")
        );
        assert_eq!(
            data_path(Path::new("/a/audit.jsonl.chain")).unwrap(),
            Path::new("/a/audit.jsonl")
        );
        assert_eq!(data_path(Path::new("/a/.chain")), None);
        assert_eq!(data_path(Path::new("/a/audit.jsonl")), None);
    }

    #[test]
    fn a_torn_last_line_is_reported_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.chain");
        std::fs::write(&path, "not a checkpoint\n{\"v\":1,\"tr").unwrap();
        let sidecar = read_sidecar(&path).unwrap();
        assert_eq!(sidecar.entries.len(), 1);
        assert!(sidecar.entries[0].checkpoint.is_err());
        assert_eq!(
            sidecar.torn,
            Some(TornTail {
                offset: 17,
                len: 10
            })
        );
        let mut file = File::open(&path).unwrap();
        let end = read_sidecar_end(&mut file).unwrap();
        assert!(end.last.unwrap().is_err());
        assert_eq!(
            end.torn,
            Some(TornTail {
                offset: 17,
                len: 10
            })
        );
    }

    #[test]
    fn the_last_line_is_found_from_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.chain");
        let mut file = File::create(&path).unwrap();
        for _ in 0..1000 {
            file.write_all(&[b'x'; 300]).unwrap();
            file.write_all(b"\n").unwrap();
        }
        // A last line longer than the first window.
        file.write_all(&[b'y'; 300_000]).unwrap();
        file.write_all(b"\ntorn").unwrap();
        let mut file = File::open(&path).unwrap();
        let end = read_sidecar_end(&mut file).unwrap();
        assert_eq!(end.torn.unwrap().len, 4);
        assert!(end.last.unwrap().unwrap_err().contains("expected"));
    }

    #[test]
    fn an_empty_sidecar_has_no_last_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.chain");
        std::fs::write(&path, "").unwrap();
        let end = read_sidecar_end(&mut File::open(&path).unwrap()).unwrap();
        assert!(end.last.is_none() && end.torn.is_none());
    }
}
