//! An append-only log file read on from where the last read stopped: each read returns
//! only the complete lines added since, so following a live run costs what it wrote, not
//! what it has written so far. A line still being written waits for its newline.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Most bytes taken from the file in one read (the rest comes with the next).
const READ_CHUNK: u64 = 8 * 1024 * 1024;

/// What a read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lines {
    /// Lines added after those already read.
    Appended(Vec<String>),
    /// The file is shorter than what was read (replaced or cut): these are all its lines,
    /// and what was folded from the old ones no longer holds.
    Restarted(Vec<String>),
}

impl Lines {
    /// The lines, whichever way they came.
    pub fn lines(&self) -> &[String] {
        match self {
            Lines::Appended(l) | Lines::Restarted(l) => l,
        }
    }
}

/// A file followed line by line.
#[derive(Debug)]
pub struct LineTail {
    path: PathBuf,
    /// Bytes of the file consumed (complete lines and `partial`).
    offset: u64,
    /// The start of a line whose newline has not been written yet.
    partial: Vec<u8>,
}

impl LineTail {
    /// Follows `path` from its start (it need not exist yet).
    pub fn new(path: &Path) -> LineTail {
        LineTail {
            path: path.to_path_buf(),
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// The file followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes read so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads what the file gained since the last read. A missing file has no lines.
    pub fn read(&mut self) -> std::io::Result<Lines> {
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Lines::Appended(Vec::new()));
            }
            Err(e) => return Err(e),
        };
        let len = f.metadata()?.len();
        let restarted = len < self.offset;
        if restarted {
            self.offset = 0;
            self.partial.clear();
        }
        let mut buf = std::mem::take(&mut self.partial);
        if len > self.offset {
            f.seek(SeekFrom::Start(self.offset))?;
            let before = buf.len();
            f.take(READ_CHUNK).read_to_end(&mut buf)?;
            self.offset += (buf.len() - before) as u64;
        }
        let lines = self.split(buf);
        Ok(if restarted {
            Lines::Restarted(lines)
        } else {
            Lines::Appended(lines)
        })
    }

    /// Complete lines of `buf`; the unfinished end is kept for the next read.
    fn split(&mut self, mut buf: Vec<u8>) -> Vec<String> {
        let Some(last_nl) = buf.iter().rposition(|&b| b == b'\n') else {
            self.partial = buf;
            return Vec::new();
        };
        self.partial = buf.split_off(last_nl + 1);
        buf.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, bytes: &[u8]) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
    }

    #[test]
    fn only_lines_added_since_the_last_read_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let mut t = LineTail::new(&p);
        assert_eq!(t.read().unwrap(), Lines::Appended(vec![]), "no file yet");
        append(&p, b"one\ntwo\n");
        assert_eq!(t.read().unwrap().lines(), ["one", "two"]);
        assert_eq!(t.read().unwrap().lines(), [] as [&str; 0]);
        append(&p, b"three\n");
        assert_eq!(t.read().unwrap(), Lines::Appended(vec!["three".into()]));
        assert_eq!(t.offset(), 14);
    }

    #[test]
    fn a_line_being_written_waits_for_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let mut t = LineTail::new(&p);
        append(&p, b"whole\nhal");
        assert_eq!(t.read().unwrap().lines(), ["whole"]);
        append(&p, b"f of it");
        assert!(t.read().unwrap().lines().is_empty());
        append(&p, b"\n\nnext\n");
        assert_eq!(t.read().unwrap().lines(), ["half of it", "next"]);
    }

    #[test]
    fn a_file_cut_short_is_read_again_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let mut t = LineTail::new(&p);
        append(&p, b"old one\nold two\n");
        t.read().unwrap();
        std::fs::write(&p, b"new\n").unwrap();
        assert_eq!(t.read().unwrap(), Lines::Restarted(vec!["new".into()]));
        append(&p, b"more\n");
        assert_eq!(t.read().unwrap(), Lines::Appended(vec!["more".into()]));
    }

    #[test]
    fn bytes_that_are_not_text_do_not_stop_the_reading() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let mut t = LineTail::new(&p);
        append(&p, b"\xff\xfe bad\nfine\n");
        let got = t.read().unwrap();
        assert_eq!(got.lines().len(), 2);
        assert_eq!(got.lines()[1], "fine");
    }
}
