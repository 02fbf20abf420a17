//! Just enough of the POSIX shell to see which commands a RUN line runs with which arguments:
//! quotes, backslashes, and the `&&`, `||`, `;`, `|`, `&` and newline separators. Variables are
//! left as written. Used by the package-manager rules.

/// One simple command: its words (quotes removed), and whether a `|` joins it to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Command {
    pub words: Vec<String>,
    pub pipe_after: bool,
}

impl Command {
    /// The command name, skipping `VAR=value` prefixes, `sudo` and `env`/`exec`-style wrappers.
    pub fn name(&self) -> Option<&str> {
        self.program().first().map(String::as_str)
    }

    /// The words from the program name on.
    pub fn program(&self) -> &[String] {
        let mut i = 0;
        while let Some(w) = self.words.get(i) {
            let assign = w.split_once('=').is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            if assign
                || matches!(
                    w.as_str(),
                    "sudo" | "env" | "exec" | "command" | "nohup" | "time"
                )
            {
                i += 1;
            } else {
                break;
            }
        }
        self.words.get(i..).unwrap_or(&[])
    }

    /// Whether the words after the program name include `flag` (exactly, or `flag=...`).
    pub fn has_flag(&self, flag: &str) -> bool {
        self.program()
            .iter()
            .skip(1)
            .any(|w| w == flag || w.strip_prefix(flag).is_some_and(|r| r.starts_with('=')))
    }

    /// Whether a short-option cluster (`-yq`) or the word itself contains the letter `c`.
    pub fn has_short(&self, c: char) -> bool {
        self.program()
            .iter()
            .skip(1)
            .any(|w| w.starts_with('-') && !w.starts_with("--") && w[1..].contains(c))
    }
}

/// Splits a shell command line into simple commands.
pub(crate) fn commands(text: &str) -> Vec<Command> {
    let mut out = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = text.chars().peekable();
    let end = |words: &mut Vec<String>, pipe: bool, out: &mut Vec<Command>| {
        if !words.is_empty() {
            out.push(Command {
                words: std::mem::take(words),
                pipe_after: pipe,
            });
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for d in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                    cur.push(d);
                }
            }
            '"' => {
                in_word = true;
                while let Some(d) = chars.next() {
                    match d {
                        '"' => break,
                        '\\' => {
                            if let Some(e) = chars.next() {
                                cur.push(e);
                            }
                        }
                        _ => cur.push(d),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') | None => {}
                Some(e) => {
                    cur.push(e);
                    in_word = true;
                }
            },
            '#' if !in_word => {
                // A comment to the end of the line.
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                end(&mut words, false, &mut out);
            }
            ' ' | '\t' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\n' | ';' | '&' | '|' | '(' | ')' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                let pipe = c == '|' && chars.peek() != Some(&'|');
                if (c == '|' || c == '&') && chars.peek() == Some(&c) {
                    chars.next();
                }
                end(&mut words, pipe, &mut out);
            }
            _ => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    end(&mut words, false, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_commands() {
        let c = commands("apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y 'a b' c=1 \\\n && rm -rf /var/lib/apt/lists/* ; curl x | sh # done");
        let names: Vec<_> = c.iter().map(|c| c.name().unwrap_or("")).collect();
        assert_eq!(names, vec!["apt-get", "apt-get", "rm", "curl", "sh"]);
        assert_eq!(&c[1].program()[3..], ["a b", "c=1"]);
        assert!(c[1].has_short('y'));
        assert_eq!(c[1].words[0], "DEBIAN_FRONTEND=noninteractive");
        assert!(c[3].pipe_after && !c[2].pipe_after);
        assert!(commands("a || b").iter().all(|c| !c.pipe_after));
    }
}
