//! The model file as the server last read it: read again unless a settled stat of it proves it
//! unchanged (fn-file-stamp's rule), parsed again only when the bytes differ. The wasm
//! component stats through WASI and the native control through `std` on Unix; both decide here.

pub use fn_file_stamp::FileStamp;
use std::time::Duration;

use crate::model::{load_model, Model, ModelError};

/// The model file as last read.
#[derive(Debug, Default)]
pub struct ModelFile {
    last: Option<Held>,
}

/// The bytes last read, what they parsed to (errors included), and the file's stamp taken just
/// before that read if it was settled.
#[derive(Debug)]
struct Held {
    bytes: Vec<u8>,
    model: Result<Model, ModelError>,
    stamp: Option<FileStamp>,
}

impl ModelFile {
    pub const fn new() -> ModelFile {
        ModelFile { last: None }
    }

    /// The model. `stat` gives the file's stamp and the time just before it was taken (`None`
    /// when it cannot be had); it is called only when a model is held, so an instance's first
    /// request (every request of a fresh instance) just reads. When the stamp is the settled
    /// stamp of the bytes held, they are used without reading; otherwise `read` reads the
    /// file (after the stat), and the bytes are parsed unless they are those held.
    pub fn model(
        &mut self,
        stat: impl FnOnce() -> Option<(FileStamp, Duration)>,
        read: impl FnOnce() -> Result<Vec<u8>, String>,
    ) -> Result<&Model, ModelError> {
        let stamp = match &self.last {
            Some(_) => stat(),
            None => None,
        };
        let unchanged = match (&self.last, stamp) {
            (Some(held), Some((stamp, _))) => held.stamp == Some(stamp),
            _ => false,
        };
        if !unchanged {
            let bytes = read().map_err(ModelError::Missing)?;
            let stamp = stamp.filter(|(s, now)| s.settled(*now)).map(|(s, _)| s);
            match &mut self.last {
                Some(held) if held.bytes == bytes => held.stamp = stamp,
                last => {
                    let model = load_model(&bytes);
                    *last = Some(Held {
                        bytes,
                        model,
                        stamp,
                    });
                }
            }
        }
        let held = self.last.as_ref().expect("read or held above");
        held.model.as_ref().map_err(Clone::clone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = include_str!("../../../../models/iris/v1/model.json");
    const V2: &str = include_str!("../../../../models/iris/v2/model.json");

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn stamp(size: usize, at: u64) -> FileStamp {
        FileStamp {
            identity: (1, 2),
            size: size as u64,
            modified: Some(secs(at)),
            changed: Some(secs(at)),
        }
    }

    /// Calls `model` and says whether it read the file, and which model it answered with.
    fn ask(
        file: &mut ModelFile,
        stamp: Option<FileStamp>,
        now: u64,
        bytes: &str,
    ) -> (bool, String) {
        let mut read = false;
        let model = file.model(
            || stamp.map(|s| (s, secs(now))),
            || {
                read = true;
                Ok(bytes.as_bytes().to_vec())
            },
        );
        let name = model
            .map(|m| m.artifact().name.clone())
            .unwrap_or_else(|e| e.to_string());
        (read, name)
    }

    #[test]
    fn a_settled_unchanged_stamp_skips_the_read() {
        let mut file = ModelFile::new();
        let s = stamp(V1.len(), 100);
        // The first request reads without a stat (all a fresh instance ever does), the second
        // records the settled stamp with its read, the third only stats.
        assert_eq!(
            ask(&mut file, Some(s), 200, V1),
            (true, "iris-logreg".into())
        );
        assert_eq!(
            ask(&mut file, Some(s), 201, V1),
            (true, "iris-logreg".into())
        );
        assert_eq!(
            ask(&mut file, Some(s), 202, V1),
            (false, "iris-logreg".into())
        );
    }

    #[test]
    fn the_first_request_reads_without_a_stat() {
        let mut file = ModelFile::new();
        let model = file.model(
            || panic!("no stat before anything is held"),
            || Ok(V1.into()),
        );
        assert_eq!(
            model.map(|m| m.artifact().name.clone()),
            Ok("iris-logreg".into())
        );
    }

    #[test]
    fn a_stamp_still_within_the_slack_is_read_every_time() {
        let mut file = ModelFile::new();
        // Changed at 100 s, read at 101 s: a change at 101.5 s could carry the same times.
        let s = stamp(V1.len(), 100);
        for now in [101, 101, 102] {
            assert!(ask(&mut file, Some(s), now, V1).0, "at {now} s");
        }
        // Later the same stamp is settled: one more read to record it, then none.
        assert!(ask(&mut file, Some(s), 103, V1).0);
        assert!(!ask(&mut file, Some(s), 104, V1).0);
    }

    #[test]
    fn any_difference_in_the_stamp_reads_the_file_again() {
        let base = stamp(V1.len(), 100);
        let changes = [
            FileStamp {
                identity: (1, 3),
                ..base
            },
            FileStamp {
                size: base.size + 1,
                ..base
            },
            FileStamp {
                modified: Some(secs(150)),
                ..base
            },
            FileStamp {
                changed: Some(secs(150)),
                ..base
            },
        ];
        for changed in changes {
            let mut file = ModelFile::new();
            assert!(ask(&mut file, Some(base), 200, V1).0);
            assert!(ask(&mut file, Some(base), 200, V1).0);
            assert!(!ask(&mut file, Some(base), 200, V1).0);
            assert_eq!(
                ask(&mut file, Some(changed), 200, V2),
                (true, "iris-knn".into()),
                "{changed:?}"
            );
        }
    }

    #[test]
    fn without_a_stamp_or_times_the_file_is_read_every_time() {
        let mut file = ModelFile::new();
        assert!(ask(&mut file, None, 200, V1).0);
        assert!(ask(&mut file, None, 201, V1).0);
        let no_times = FileStamp {
            modified: None,
            changed: None,
            ..stamp(V1.len(), 0)
        };
        assert!(ask(&mut file, Some(no_times), 202, V1).0);
        assert!(ask(&mut file, Some(no_times), 203, V1).0);
    }

    #[test]
    fn a_failed_read_answers_missing_and_the_next_good_read_serves() {
        let mut file = ModelFile::new();
        let s = stamp(V1.len(), 100);
        assert!(ask(&mut file, Some(s), 200, V1).0);
        let gone = file.model(|| None, || Err("cannot read /model/model.json".into()));
        assert!(matches!(gone, Err(ModelError::Missing(_))), "{gone:?}");
        let s2 = stamp(V2.len(), 300);
        assert_eq!(ask(&mut file, Some(s2), 400, V2), (true, "iris-knn".into()));
    }

    #[test]
    fn a_corrupt_file_is_an_error_until_it_changes() {
        let mut file = ModelFile::new();
        let s = stamp(9, 100);
        let (read, answer) = ask(&mut file, Some(s), 200, "{ corrupt");
        assert!(read);
        assert!(answer.contains("corrupt"), "{answer}");
        assert_eq!(
            ask(&mut file, Some(s), 201, "{ corrupt"),
            (true, answer.clone())
        );
        assert_eq!(ask(&mut file, Some(s), 202, "{ corrupt"), (false, answer));
    }
}
