//! Line editing for the interactive shell, as a pure state machine: bytes typed at the
//! terminal go in, and what to echo plus completed lines come out. It knows printable
//! characters, Enter, Backspace, Ctrl-C (cancel the line), Ctrl-D (end of input on an
//! empty line), Ctrl-U (erase the line), Ctrl-L (clear screen), Ctrl-A/Ctrl-E, the arrow
//! keys (history up/down, cursor left/right) and Home/End. Tab completion is not provided.

/// What the terminal should see or the shell should do after some input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Bytes to send back to the terminal (echo, cursor movement).
    Echo(Vec<u8>),
    /// A complete line (without the newline).
    Line(String),
    /// Ctrl-C: the current line was abandoned.
    Interrupt,
    /// Ctrl-D on an empty line.
    Eof,
    /// Ctrl-L: clear the screen and redraw the prompt and line.
    Clear(String),
}

/// The editor's state.
#[derive(Debug, Default)]
pub struct LineEditor {
    buf: Vec<char>,
    cursor: usize,
    /// Lines entered so far (oldest first), for the arrow keys.
    history: Vec<String>,
    /// Position while browsing history; `history.len()` = the line being typed.
    hist_pos: usize,
    /// The line being typed, kept while browsing history.
    draft: Vec<char>,
    /// Bytes of an unfinished escape sequence or UTF-8 character.
    pending: Vec<u8>,
}

impl LineEditor {
    pub fn new() -> Self {
        Self::default()
    }

    /// The line typed so far.
    pub fn current(&self) -> String {
        self.buf.iter().collect()
    }

    /// Remembers a line in the history (the shell calls this after running it).
    pub fn push_history(&mut self, line: &str) {
        if !line.trim().is_empty() && self.history.last().is_none_or(|l| l != line) {
            self.history.push(line.to_string());
        }
        self.hist_pos = self.history.len();
    }

    /// Feeds typed bytes; returns what happened, in order.
    pub fn feed(&mut self, input: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        let mut echo = Vec::new();
        let flush = |echo: &mut Vec<u8>, events: &mut Vec<Event>| {
            if !echo.is_empty() {
                events.push(Event::Echo(std::mem::take(echo)));
            }
        };
        for &b in input {
            if !self.pending.is_empty() {
                self.pending.push(b);
                if self.pending[0] == 0x1b {
                    if let Some(done) = self.escape(&mut echo)
                        && done
                    {
                        self.pending.clear();
                    }
                    continue;
                }
                // A UTF-8 continuation.
                if let Ok(s) = std::str::from_utf8(&self.pending) {
                    let s = s.to_string();
                    self.pending.clear();
                    for c in s.chars() {
                        self.insert(c, &mut echo);
                    }
                } else if self.pending.len() >= 4 {
                    self.pending.clear();
                }
                continue;
            }
            match b {
                b'\r' | b'\n' => {
                    echo.extend_from_slice(b"\r\n");
                    flush(&mut echo, &mut events);
                    let line = self.current();
                    self.buf.clear();
                    self.cursor = 0;
                    self.hist_pos = self.history.len();
                    events.push(Event::Line(line));
                }
                0x03 => {
                    echo.extend_from_slice(b"^C\r\n");
                    flush(&mut echo, &mut events);
                    self.buf.clear();
                    self.cursor = 0;
                    self.hist_pos = self.history.len();
                    events.push(Event::Interrupt);
                }
                0x04 => {
                    if self.buf.is_empty() {
                        flush(&mut echo, &mut events);
                        events.push(Event::Eof);
                    } else if self.cursor < self.buf.len() {
                        self.buf.remove(self.cursor);
                        self.redraw_tail(&mut echo, 1);
                    }
                }
                0x7f | 0x08 => {
                    if self.cursor > 0 {
                        self.cursor -= 1;
                        self.buf.remove(self.cursor);
                        echo.push(0x08);
                        self.redraw_tail(&mut echo, 1);
                    }
                }
                0x15 => {
                    // Ctrl-U: erase from the start of the line to the cursor.
                    let n = self.cursor;
                    if n > 0 {
                        self.buf.drain(..n);
                        self.cursor = 0;
                        echo.extend(std::iter::repeat_n(0x08, n));
                        self.redraw_tail(&mut echo, n);
                    }
                }
                0x01 => {
                    echo.extend(std::iter::repeat_n(0x08, self.cursor));
                    self.cursor = 0;
                }
                0x05 => {
                    let tail: String = self.buf[self.cursor..].iter().collect();
                    echo.extend_from_slice(tail.as_bytes());
                    self.cursor = self.buf.len();
                }
                0x0c => {
                    flush(&mut echo, &mut events);
                    events.push(Event::Clear(self.current()));
                }
                0x1b => self.pending.push(b),
                0x09 => {}
                b if b < 0x20 => {}
                b if b < 0x80 => self.insert(char::from(b), &mut echo),
                b => self.pending.push(b),
            }
        }
        flush(&mut echo, &mut events);
        events
    }

    fn insert(&mut self, c: char, echo: &mut Vec<u8>) {
        self.buf.insert(self.cursor, c);
        self.cursor += 1;
        let mut tmp = [0u8; 4];
        echo.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
        if self.cursor < self.buf.len() {
            self.redraw_tail(echo, 0);
        }
    }

    /// Reprints the text after the cursor, blanks `erased` leftover cells, and moves the
    /// cursor back to where it was.
    fn redraw_tail(&self, echo: &mut Vec<u8>, erased: usize) {
        let tail: String = self.buf[self.cursor..].iter().collect();
        echo.extend_from_slice(tail.as_bytes());
        echo.extend(std::iter::repeat_n(b' ', erased));
        let back = self.buf.len() - self.cursor + erased;
        echo.extend(std::iter::repeat_n(0x08, back));
    }

    /// Replaces the whole line on screen (history browsing).
    fn replace_line(&mut self, new: Vec<char>, echo: &mut Vec<u8>) {
        echo.extend(std::iter::repeat_n(0x08, self.cursor));
        let old_len = self.buf.len();
        self.buf = new;
        self.cursor = self.buf.len();
        let s: String = self.buf.iter().collect();
        echo.extend_from_slice(s.as_bytes());
        if old_len > self.buf.len() {
            let extra = old_len - self.buf.len();
            echo.extend(std::iter::repeat_n(b' ', extra));
            echo.extend(std::iter::repeat_n(0x08, extra));
        }
    }

    /// Handles an escape sequence in `pending`: `Some(true)` when complete.
    fn escape(&mut self, echo: &mut Vec<u8>) -> Option<bool> {
        let seq = self.pending.clone();
        if seq.len() < 3 {
            if seq.len() == 2 && seq[1] != b'[' && seq[1] != b'O' {
                return Some(true);
            }
            return Some(false);
        }
        let last = *seq.last()?;
        if !(0x40..=0x7e).contains(&last) {
            return Some(seq.len() > 8);
        }
        match (seq[1], last) {
            (_, b'A') => {
                if self.hist_pos > 0 {
                    if self.hist_pos == self.history.len() {
                        self.draft = self.buf.clone();
                    }
                    self.hist_pos -= 1;
                    let line: Vec<char> = self.history[self.hist_pos].chars().collect();
                    self.replace_line(line, echo);
                } else {
                    echo.push(0x07);
                }
            }
            (_, b'B') if self.hist_pos < self.history.len() => {
                self.hist_pos += 1;
                let line = if self.hist_pos == self.history.len() {
                    self.draft.clone()
                } else {
                    self.history[self.hist_pos].chars().collect()
                };
                self.replace_line(line, echo);
            }
            (_, b'C') if self.cursor < self.buf.len() => {
                let mut tmp = [0u8; 4];
                echo.extend_from_slice(self.buf[self.cursor].encode_utf8(&mut tmp).as_bytes());
                self.cursor += 1;
            }
            (_, b'D') if self.cursor > 0 => {
                self.cursor -= 1;
                echo.push(0x08);
            }
            (_, b'H') => {
                echo.extend(std::iter::repeat_n(0x08, self.cursor));
                self.cursor = 0;
            }
            (_, b'F') => {
                let tail: String = self.buf[self.cursor..].iter().collect();
                echo.extend_from_slice(tail.as_bytes());
                self.cursor = self.buf.len();
            }
            (b'[', b'~')
                if seq.get(2) == Some(&b'3')
                // Delete key.
                && self.cursor < self.buf.len() =>
            {
                self.buf.remove(self.cursor);
                self.redraw_tail(echo, 1);
            }
            _ => {}
        }
        Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Line(l) => Some(l.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn backspace_removes_the_last_character() {
        let mut ed = LineEditor::new();
        let ev = ed.feed(b"whoamii\x7f\r");
        assert_eq!(lines(&ev), ["whoami"]);
    }

    #[test]
    fn ctrl_u_erases_the_line_and_ctrl_c_abandons_it() {
        let mut ed = LineEditor::new();
        let ev = ed.feed(b"rm -rf /\x15ls\r");
        assert_eq!(lines(&ev), ["ls"]);
        let ev = ed.feed(b"sleep 100\x03");
        assert!(ev.contains(&Event::Interrupt));
        assert_eq!(ed.current(), "");
    }

    #[test]
    fn ctrl_d_ends_input_only_on_an_empty_line() {
        let mut ed = LineEditor::new();
        assert_eq!(ed.feed(b"\x04"), vec![Event::Eof]);
        let ev = ed.feed(b"ab\x04");
        assert!(!ev.contains(&Event::Eof));
    }

    #[test]
    fn arrow_up_recalls_history_and_down_returns_to_the_draft() {
        let mut ed = LineEditor::new();
        ed.push_history("hostname");
        ed.push_history("whoami");
        ed.feed(b"ec");
        ed.feed(b"\x1b[A");
        assert_eq!(ed.current(), "whoami");
        ed.feed(b"\x1b[A");
        assert_eq!(ed.current(), "hostname");
        ed.feed(b"\x1b[B\x1b[B");
        assert_eq!(ed.current(), "ec");
    }

    #[test]
    fn left_arrow_then_typing_inserts_in_the_middle() {
        let mut ed = LineEditor::new();
        let ev = ed.feed(b"eho\x1b[D\x1b[Dc\r");
        assert_eq!(lines(&ev), ["echo"]);
    }

    #[test]
    fn utf8_input_is_kept_whole() {
        let mut ed = LineEditor::new();
        let ev = ed.feed("echo héllo\r".as_bytes());
        assert_eq!(lines(&ev), ["echo héllo"]);
    }
}
