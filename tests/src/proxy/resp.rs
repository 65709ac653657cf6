//! RESP framing for the fault proxy: where one command (client to server) or one reply
//! (server to client) ends in a TCP byte stream. The proxy needs whole frames to aim a fault
//! at one command, and must count replies to know which one answers that command (Redis
//! answers a connection's commands in order).
//!
//! Covers every RESP2 and RESP3 type Redis sends; inline commands (plain text lines typed
//! into telnet) are not needed, as client libraries always send arrays of bulk strings.

/// The stream does not follow RESP: the proxy gives up on the connection.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(pub String);

/// Length of the first complete RESP value at the start of `buf`, or `None` while more
/// bytes are needed. Iterative (a count of values still to read) rather than recursive,
/// so a deeply nested reply cannot overflow the stack.
pub fn value_len(buf: &[u8]) -> Result<Option<usize>, Malformed> {
    let mut pos = 0;
    let mut pending: u64 = 1;
    while pending > 0 {
        let Some(end) = find_crlf(buf, pos) else {
            return Ok(None);
        };
        let kind = buf[pos];
        let line = &buf[pos + 1..end];
        pos = end + 2;
        pending -= 1;
        match kind {
            // Simple string, error, integer, null, double, big number, boolean.
            b'+' | b'-' | b':' | b'_' | b',' | b'(' | b'#' => {}
            // Bulk string, blob error, verbatim string: a length, then that many bytes.
            b'$' | b'!' | b'=' => {
                let n = int(line)?;
                if n >= 0 {
                    let Some(data_end) = usize::try_from(n).ok().and_then(|n| pos.checked_add(n))
                    else {
                        return Err(Malformed(format!("bulk length {n} too large")));
                    };
                    if buf.len() < data_end + 2 {
                        return Ok(None);
                    }
                    if &buf[data_end..data_end + 2] != b"\r\n" {
                        return Err(Malformed("bulk string not ended by CRLF".into()));
                    }
                    pos = data_end + 2;
                }
            }
            // Array, set, push: that many values follow (-1: a null array).
            b'*' | b'~' | b'>' => pending += count(line)?,
            // Map: that many key/value pairs.
            b'%' => pending += 2 * count(line)?,
            // Attribute: pairs, then the value they describe.
            b'|' => pending += 2 * count(line)? + 1,
            other => {
                return Err(Malformed(format!(
                    "unexpected RESP type byte {:?}",
                    char::from(other)
                )));
            }
        }
    }
    Ok(Some(pos))
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

fn int(line: &[u8]) -> Result<i64, Malformed> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            Malformed(format!(
                "bad length {:?}",
                String::from_utf8_lossy(line).into_owned()
            ))
        })
}

fn count(line: &[u8]) -> Result<u64, Malformed> {
    // A negative count is a null aggregate: nothing follows.
    Ok(u64::try_from(int(line)?).unwrap_or(0))
}

/// Cuts a byte stream into whole RESP values as the bytes arrive, however the reads split
/// them.
#[derive(Debug, Default)]
pub struct Splitter {
    buf: Vec<u8>,
    commands: bool,
}

impl Splitter {
    /// For the client's side: every frame must be a command (an array).
    pub fn commands() -> Self {
        Self {
            buf: Vec::new(),
            commands: true,
        }
    }

    /// For the server's side: any reply type.
    pub fn replies() -> Self {
        Self::default()
    }

    /// Adds bytes just read.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, if the bytes so far hold one.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, Malformed> {
        if self.commands && self.buf.first().is_some_and(|b| *b != b'*') {
            return Err(Malformed(
                "a command must be an array of bulk strings (inline commands are not supported)"
                    .into(),
            ));
        }
        let Some(len) = value_len(&self.buf)? else {
            return Ok(None);
        };
        let rest = self.buf.split_off(len);
        Ok(Some(std::mem::replace(&mut self.buf, rest)))
    }

    /// Bytes of an incomplete frame still held.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// A RESP command as a client library sends it (an array of bulk strings).
pub fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(&arg_bytes(arg));
    }
    out
}

/// One argument as it appears inside a command frame: `$len\r\n<bytes>\r\n`. As a
/// [`crate::proxy::FaultProxy::drop_reply_of_next`] pattern it matches a command with an
/// argument exactly equal to `arg` (not merely containing it).
pub fn arg_bytes(arg: &[u8]) -> Vec<u8> {
    let mut out = format!("${}\r\n", arg.len()).into_bytes();
    out.extend_from_slice(arg);
    out.extend_from_slice(b"\r\n");
    out
}

/// Whether `haystack` contains `needle` (an empty needle matches everything).
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_frames(splitter: &mut Splitter) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(frame) = splitter.next_frame().unwrap() {
            out.push(frame);
        }
        out
    }

    /// The frames `stream` gives when it arrives in two reads cut at `cut`, and the bytes
    /// left buffered.
    fn frames_cut_at(mut splitter: Splitter, stream: &[u8], cut: usize) -> (Vec<Vec<u8>>, usize) {
        splitter.push(&stream[..cut]);
        let mut frames = all_frames(&mut splitter);
        splitter.push(&stream[cut..]);
        frames.extend(all_frames(&mut splitter));
        (frames, splitter.buffered())
    }

    #[test]
    fn commands_split_at_every_byte_come_out_whole() {
        let set = command(&[b"SET", b"k", b"v\r\nwith crlf inside"]);
        let evalsha = command(&[b"EVALSHA", b"abc", b"1", b"key", b""]);
        let stream = [set.clone(), evalsha.clone()].concat();
        for cut in 0..=stream.len() {
            let (frames, left) = frames_cut_at(Splitter::commands(), &stream, cut);
            assert_eq!(frames, vec![set.clone(), evalsha.clone()], "cut at {cut}");
            assert_eq!(left, 0);
        }
    }

    #[test]
    fn byte_by_byte_reads_give_each_frame_once_complete() {
        let frame = command(&[b"RPUSH", b"queue", b"{\"id\":\"1\"}"]);
        let mut splitter = Splitter::commands();
        for (i, b) in frame.iter().enumerate() {
            assert_eq!(splitter.next_frame().unwrap(), None, "early at byte {i}");
            splitter.push(&[*b]);
        }
        assert_eq!(splitter.next_frame().unwrap(), Some(frame));
        assert_eq!(splitter.next_frame().unwrap(), None);
    }

    #[test]
    fn replies_of_every_type_are_delimited() {
        let replies: [&[u8]; 14] = [
            b"+OK\r\n",
            b"-ERR no\r\n",
            b":42\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"$5\r\nhe\r\no\r\n",
            b"*3\r\n$3\r\nabc\r\n:1700000000000\r\n*2\r\n:1\r\n$-1\r\n",
            b"_\r\n",
            b",3.14\r\n",
            b"#t\r\n",
            b"%2\r\n+a\r\n:1\r\n+b\r\n*1\r\n:2\r\n",
            b"~2\r\n+x\r\n+y\r\n",
            b"=8\r\ntxt:abcd\r\n",
            b"|1\r\n+ttl\r\n:3\r\n+value\r\n",
        ];
        let stream = replies.concat();
        let want: Vec<Vec<u8>> = replies.iter().map(|r| r.to_vec()).collect();
        for cut in 0..=stream.len() {
            let (frames, _) = frames_cut_at(Splitter::replies(), &stream, cut);
            assert_eq!(frames, want, "cut at {cut}");
        }
    }

    #[test]
    fn garbage_is_refused_not_waited_on() {
        let mut splitter = Splitter::commands();
        splitter.push(b"PING\r\n");
        assert!(splitter.next_frame().is_err(), "inline command accepted");
        let mut splitter = Splitter::replies();
        splitter.push(b"?what\r\n");
        assert!(splitter.next_frame().is_err());
        let mut splitter = Splitter::replies();
        splitter.push(b"$3\r\nabcXY");
        assert!(
            splitter.next_frame().is_err(),
            "bulk without its CRLF accepted"
        );
        assert!(value_len(b"*x\r\n").is_err());
    }

    #[test]
    fn argument_patterns_match_whole_arguments_only() {
        let frame = command(&[b"EVALSHA", b"sha", b"2", b"q:{a}", b"q:{a}:leases"]);
        assert!(contains(&frame, &arg_bytes(b"q:{a}:leases")));
        assert!(contains(&frame, &arg_bytes(b"q:{a}")));
        assert!(!contains(&frame, &arg_bytes(b"{a}")));
        assert!(!contains(&frame, &arg_bytes(b"q:{a}:lease")));
    }
}
