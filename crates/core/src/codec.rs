//! Files of events and alerts: NDJSON (the proto3 JSON mapping, one message
//! per line) or length-delimited protobuf. The format is chosen by the file
//! extension: `.ndjson`/`.jsonl` for JSON, `.pb`/`.bin` for protobuf.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use prost::Message;

/// How messages are laid out in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// One proto3-JSON message per line.
    Ndjson,
    /// Varint length prefix, then the protobuf bytes, repeated.
    LengthDelimited,
}

/// Errors reading or writing message files.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The file could not be read or written.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// A line is not valid proto3 JSON for the message.
    #[error("line {line}: invalid JSON: {source}")]
    Json {
        /// 1-based line number.
        line: usize,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A record is not valid protobuf for the message.
    #[error("record {record}: invalid protobuf: {source}")]
    Protobuf {
        /// 1-based record number.
        record: usize,
        /// The decoder's error.
        source: prost::DecodeError,
    },
    /// The extension says neither NDJSON nor protobuf.
    #[error("cannot tell the format of {0}: use .ndjson, .jsonl, .pb or .bin")]
    UnknownFormat(String),
}

impl FileFormat {
    /// The format a path's extension names.
    pub fn of_path(path: &Path) -> Result<Self, CodecError> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("ndjson" | "jsonl" | "json") => Ok(FileFormat::Ndjson),
            Some("pb" | "bin") => Ok(FileFormat::LengthDelimited),
            _ => Err(CodecError::UnknownFormat(path.display().to_string())),
        }
    }
}

/// Writes messages to a file, one after the other.
pub struct MessageWriter<W: Write> {
    out: W,
    format: FileFormat,
    buf: Vec<u8>,
}

impl MessageWriter<BufWriter<File>> {
    /// Creates (truncates) `path`, format from its extension.
    pub fn create(path: &Path) -> Result<Self, CodecError> {
        let format = FileFormat::of_path(path)?;
        Ok(MessageWriter::new(BufWriter::with_capacity(1 << 20, File::create(path)?), format))
    }
}

impl<W: Write> MessageWriter<W> {
    /// Writes to `out` in `format`.
    pub fn new(out: W, format: FileFormat) -> Self {
        MessageWriter { out, format, buf: Vec::new() }
    }

    /// Appends one message.
    pub fn write<M: Message + serde::Serialize>(&mut self, message: &M) -> Result<(), CodecError> {
        match self.format {
            FileFormat::Ndjson => {
                serde_json::to_writer(&mut self.out, message).map_err(io::Error::from)?;
                self.out.write_all(b"\n")?;
            }
            FileFormat::LengthDelimited => {
                self.buf.clear();
                message.encode_length_delimited(&mut self.buf).map_err(io::Error::other)?;
                self.out.write_all(&self.buf)?;
            }
        }
        Ok(())
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> Result<W, CodecError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads messages from a file, one after the other.
pub struct MessageReader<R: BufRead> {
    input: R,
    format: FileFormat,
    line: String,
    buf: Vec<u8>,
    count: usize,
}

impl MessageReader<BufReader<File>> {
    /// Opens `path`, format from its extension.
    pub fn open(path: &Path) -> Result<Self, CodecError> {
        let format = FileFormat::of_path(path)?;
        Ok(MessageReader::new(BufReader::with_capacity(1 << 20, File::open(path)?), format))
    }
}

impl<R: BufRead> MessageReader<R> {
    /// Reads from `input` in `format`.
    pub fn new(input: R, format: FileFormat) -> Self {
        MessageReader { input, format, line: String::new(), buf: Vec::new(), count: 0 }
    }

    /// The next message, `None` at the end of the file. Blank lines are skipped.
    pub fn next_message<M>(&mut self) -> Result<Option<M>, CodecError>
    where
        M: Message + Default + serde::de::DeserializeOwned,
    {
        match self.format {
            FileFormat::Ndjson => loop {
                self.line.clear();
                if self.input.read_line(&mut self.line)? == 0 {
                    return Ok(None);
                }
                self.count += 1;
                let text = self.line.trim();
                if text.is_empty() {
                    continue;
                }
                return serde_json::from_str(text)
                    .map(Some)
                    .map_err(|source| CodecError::Json { line: self.count, source });
            },
            FileFormat::LengthDelimited => {
                let Some(len) = read_varint(&mut self.input)? else { return Ok(None) };
                self.count += 1;
                self.buf.resize(len as usize, 0);
                self.input.read_exact(&mut self.buf)?;
                M::decode(self.buf.as_slice())
                    .map(Some)
                    .map_err(|source| CodecError::Protobuf { record: self.count, source })
            }
        }
    }
}

/// Reads a protobuf varint; `None` on a clean end of input.
fn read_varint<R: Read>(input: &mut R) -> Result<Option<u64>, CodecError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let mut byte = [0u8];
        if input.read(&mut byte)? == 0 {
            if shift == 0 {
                return Ok(None);
            }
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated length prefix").into());
        }
        value |= u64::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            return Ok(Some(value));
        }
    }
    Err(io::Error::new(io::ErrorKind::InvalidData, "length prefix too long").into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1 as wire;

    fn sample() -> wire::Event {
        wire::Event {
            kind: Some(wire::event::Kind::TimeReport(wire::TimeReport {
                event_id: "tr-1".into(),
                provider_id: "556036-0793".into(),
                service_type: wire::ServiceType::Escort as i32,
                planned_minutes: Some(45),
                check_in: Some(pbjson_types::Timestamp { seconds: 1_767_250_800, nanos: 0 }),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn both_formats_round_trip() {
        for format in [FileFormat::Ndjson, FileFormat::LengthDelimited] {
            let mut w = MessageWriter::new(Vec::new(), format);
            w.write(&sample()).unwrap();
            w.write(&sample()).unwrap();
            let bytes = w.finish().unwrap();
            let mut r = MessageReader::new(bytes.as_slice(), format);
            assert_eq!(r.next_message::<wire::Event>().unwrap(), Some(sample()));
            assert_eq!(r.next_message::<wire::Event>().unwrap(), Some(sample()));
            assert_eq!(r.next_message::<wire::Event>().unwrap(), None);
        }
    }

    #[test]
    fn json_is_the_standard_proto3_mapping() {
        let mut w = MessageWriter::new(Vec::new(), FileFormat::Ndjson);
        w.write(&sample()).unwrap();
        let text = String::from_utf8(w.finish().unwrap()).unwrap();
        assert!(text.contains(r#""timeReport":{"#), "{text}");
        assert!(text.contains(r#""eventId":"tr-1""#), "{text}");
        assert!(text.contains(r#""serviceType":"SERVICE_TYPE_ESCORT""#), "{text}");
        // RFC 3339 in UTC; pbjson writes the offset as +00:00 rather than Z.
        assert!(text.contains(r#""checkIn":"2026-01-01T07:00:00+00:00""#), "{text}");
    }

    #[test]
    fn a_bad_line_names_its_number() {
        let mut r = MessageReader::new("\n{\"timeReport\":{}}\nnot json\n".as_bytes(), FileFormat::Ndjson);
        assert!(r.next_message::<wire::Event>().unwrap().is_some());
        match r.next_message::<wire::Event>() {
            Err(CodecError::Json { line, .. }) => assert_eq!(line, 3),
            other => panic!("expected a JSON error, got {other:?}"),
        }
    }
}
