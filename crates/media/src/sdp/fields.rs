//! The `type=value` lines of an SDP body (RFC 8866 §5), read as the answerer always read
//! them (`text.lines().map(str::trim)`, each cut at its first `=`), without str's char
//! searches: an offer is read for every call set up.

/// Each line of `text` that has an `=`, trimmed, as its type and value. A line without
/// one (an empty last line too) is skipped.
pub(super) fn fields(text: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = Some(text);
    std::iter::from_fn(move || loop {
        let text = rest?;
        let line = match text.bytes().position(|b| b == b'\n') {
            Some(lf) => {
                rest = text.get(lf + 1..);
                text.get(..lf).unwrap_or_default()
            }
            None => {
                rest = None;
                text
            }
        };
        let line = trim(line);
        let Some(eq) = line.bytes().position(|b| b == b'=') else {
            continue;
        };
        return Some((
            line.get(..eq).unwrap_or_default(),
            line.get(eq + 1..).unwrap_or_default(),
        ));
    })
}

/// `line.trim()`, skipping the Unicode whitespace tables when, the CR of a CRLF aside,
/// both ends are printable ASCII (every line of a usual offer).
fn trim(line: &str) -> &str {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let printable = |b: Option<&u8>| b.is_some_and(|b| (b'!'..=b'~').contains(b));
    if printable(line.as_bytes().first()) && printable(line.as_bytes().last()) {
        line
    } else {
        line.trim()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_the_trimmed_lines_cut_at_their_first_equals() {
        for text in [
            "v=0\r\nc=IN IP4 1.2.3.4\r\n\r\na=x=y\r\n",
            "  v = 0 \n\tm=audio 4000 RTP/AVP 0\r\r\nnoequals\r\n=lead\na=\u{a0}z\u{a0}\r\nlast=1",
            "",
            "\n\n\r\n",
            "a=b\r",
        ] {
            let old: Vec<_> = text
                .lines()
                .map(str::trim)
                .filter_map(|l| l.split_once('='))
                .collect();
            assert_eq!(fields(text).collect::<Vec<_>>(), old, "{text:?}");
        }
    }
}
