//! The parsed Dockerfile: typed instructions with source positions, before word expansion.
//! String fields hold the raw text as written (quotes, `$VAR`s and all); the planner expands them.

use crate::error::Pos;
use serde::Serialize;

/// A piece of raw text and where it starts in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Word {
    pub text: String,
    pub pos: Pos,
}

impl Word {
    pub fn new(text: impl Into<String>, pos: Pos) -> Self {
        Word {
            text: text.into(),
            pos,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dockerfile {
    /// The escape character (`\` unless `# escape=` said otherwise).
    pub escape: char,
    /// `# syntax=` directive, if any (whittle has one frontend built in; it is recorded only).
    pub syntax: Option<String>,
    /// `# check=` directive, if any.
    pub check: Option<String>,
    pub instructions: Vec<Instruction>,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub pos: Pos,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instruction {
    /// Position of the keyword.
    pub pos: Pos,
    /// Last line of the instruction (continuations and heredocs included).
    pub end_line: usize,
    /// The instruction as written, continuations joined, without heredoc bodies.
    pub original: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "instruction", rename_all = "lowercase")]
pub enum Kind {
    From(From),
    Arg(Vec<ArgDecl>),
    Env(Vec<KeyValue>),
    Label(Vec<KeyValue>),
    Run(Run),
    Cmd(CmdLine),
    Entrypoint(CmdLine),
    Copy(Copy),
    Add(Copy),
    Expose(Vec<Word>),
    Volume(Vec<Word>),
    User(Word),
    Workdir(Word),
    Stopsignal(Word),
    Maintainer(String),
    Onbuild(Onbuild),
    Healthcheck(Healthcheck),
    Shell(Vec<String>),
}

impl Kind {
    /// The instruction keyword in upper case.
    pub fn keyword(&self) -> &'static str {
        match self {
            Kind::From(_) => "FROM",
            Kind::Arg(_) => "ARG",
            Kind::Env(_) => "ENV",
            Kind::Label(_) => "LABEL",
            Kind::Run(_) => "RUN",
            Kind::Cmd(_) => "CMD",
            Kind::Entrypoint(_) => "ENTRYPOINT",
            Kind::Copy(_) => "COPY",
            Kind::Add(_) => "ADD",
            Kind::Expose(_) => "EXPOSE",
            Kind::Volume(_) => "VOLUME",
            Kind::User(_) => "USER",
            Kind::Workdir(_) => "WORKDIR",
            Kind::Stopsignal(_) => "STOPSIGNAL",
            Kind::Maintainer(_) => "MAINTAINER",
            Kind::Onbuild(_) => "ONBUILD",
            Kind::Healthcheck(_) => "HEALTHCHECK",
            Kind::Shell(_) => "SHELL",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct From {
    pub image: Word,
    pub platform: Option<Word>,
    /// The stage name after `AS`, lower-cased.
    pub name: Option<Word>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgDecl {
    pub name: Word,
    /// The raw default value (expanded when the ARG is reached).
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    pub key: Word,
    pub value: String,
}

/// Exec form (`["a", "b"]`, not expanded) or shell form (run through the stage's SHELL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "form", content = "args", rename_all = "lowercase")]
pub enum CmdLine {
    Exec(Vec<String>),
    Shell(String),
}

/// A here-document attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The delimiter word with quotes removed (`EOF`).
    pub name: String,
    /// The body, one `\n` after each line; with `<<-`, leading tabs are already stripped.
    pub content: String,
    /// False when the delimiter was quoted: the body is taken literally.
    pub expand: bool,
    /// `<<-`: leading tabs stripped.
    pub chomp: bool,
    /// File descriptor prefix (`3<<EOF`), 0 when absent.
    pub fd: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    pub cmd: CmdLine,
    pub mounts: Vec<Mount>,
    pub network: Option<NetworkMode>,
    pub security: Option<SecurityMode>,
    pub heredocs: Vec<Heredoc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    Default,
    None,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecurityMode {
    Sandbox,
    Insecure,
}

/// One `--mount=...` of a RUN, as written: values are expanded by the planner, which re-validates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// The raw flag value (`type=cache,target=/root/.cache`).
    pub spec: Word,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Copy {
    /// Source paths (globs, URLs for ADD), raw.
    pub sources: Vec<Word>,
    /// Sources given as here-documents.
    pub heredocs: Vec<Heredoc>,
    pub dest: Word,
    pub from: Option<Word>,
    pub chown: Option<Word>,
    pub chmod: Option<Word>,
    pub link: bool,
    pub parents: bool,
    pub excludes: Vec<Word>,
    /// ADD only.
    pub checksum: Option<Word>,
    /// ADD only.
    pub keep_git_dir: bool,
    /// ADD only: `--unpack` given explicitly.
    pub unpack: Option<bool>,
    /// Sources were in JSON form.
    pub json: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Onbuild {
    /// The trigger instruction text as it will be stored in the image config.
    pub expression: String,
    pub trigger: Box<Instruction>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Healthcheck {
    None,
    Cmd {
        test: CmdLine,
        /// Durations in nanoseconds, 0 when not given (inherit).
        interval: u64,
        timeout: u64,
        start_period: u64,
        start_interval: u64,
        retries: u32,
    },
}
