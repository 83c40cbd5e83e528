//! ASCII armor on and off an age file, for tests that damage the binary file inside a
//! sealed envelope and armor it again (`age`'s own reader and writer: what the envelope
//! uses).

use std::io::{Read, Write};

/// The binary age file inside an armored one. Panics on bad armor.
pub fn dearmor(armored: &str) -> Vec<u8> {
    let mut out = Vec::new();
    age::armor::ArmoredReader::new(armored.as_bytes())
        .read_to_end(&mut out)
        .expect("valid armor");
    out
}

/// `binary` in ASCII armor, as the envelope writes it.
pub fn armor(binary: &[u8]) -> String {
    let mut out = Vec::new();
    let mut w = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .expect("armor writer");
    w.write_all(binary).expect("armor");
    w.finish().expect("armor");
    String::from_utf8(out).expect("armor is ASCII")
}
