//! What is wrong with a configuration: each [`Problem`] names the field it concerns, and
//! [`ConfigError::Invalid`] carries all of them so `gslbd check-config` lists them at once.
//!
//! Validation adds to one `Problems` collector as it walks the sections; syntax and type errors
//! from toml and serde come as a single problem, cleaned to one line by `one_line`.

use std::fmt;

/// One problem in a configuration, with the path of the field it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.path, self.reason)
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{}", list(.0))]
    Invalid(Vec<Problem>),
}

fn list(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}

impl ConfigError {
    /// The individual problems (empty for read errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid(problems) => problems,
        }
    }
}

/// toml's messages carry a source excerpt over several lines; keep the location and the reason.
pub(super) fn one_line(message: &str) -> String {
    let mut parts = message.lines().map(str::trim).filter(|l| {
        !l.is_empty() && !l.starts_with('|') && !l.chars().all(|c| c == '^' || c == ' ')
    });
    let mut out = String::new();
    for part in parts.by_ref() {
        // Lines like "5 | foo = 1" are the excerpt.
        if part
            .split_once('|')
            .is_some_and(|(n, _)| n.trim().chars().all(|c| c.is_ascii_digit()))
        {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(part);
    }
    out
}

/// Collects the problems of one validation, in the order they are found.
#[derive(Default)]
pub(super) struct Problems(pub(super) Vec<Problem>);

impl Problems {
    /// Records a problem with the field at `path`.
    pub(super) fn add(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            reason: reason.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::fixture::Fixture;
    use super::super::{load, parse};
    use super::{ConfigError, Problem};

    fn only_problem(text: &str) -> Problem {
        match parse(text) {
            Err(ConfigError::Invalid(problems)) if problems.len() == 1 => problems[0].clone(),
            other => panic!("expected one problem, got {other:?}"),
        }
    }

    #[test]
    fn a_syntax_error_is_one_line_with_its_location() {
        let problem = only_problem("[zone\nname = 1");
        assert_eq!(problem.path, "");
        assert!(
            problem
                .reason
                .starts_with("TOML parse error at line 1, column 6: unclosed table"),
            "{problem:?}"
        );
        assert!(!problem.reason.contains(['\n', '|', '^']), "{problem:?}");
    }

    #[test]
    fn type_and_unknown_field_errors_name_the_field() {
        let problem = only_problem(&Fixture::new().zone(r#"ttl = "x""#).text());
        assert_eq!(problem.path, "zone.ttl");
        assert!(
            problem
                .reason
                .ends_with(r#"invalid type: string "x", expected u32"#),
            "{problem:?}"
        );
        let problem = only_problem(&Fixture::new().table("[server]\nlisten_on = 1").text());
        assert_eq!(problem.path, "server.listen_on");
        assert!(
            problem.reason.contains("unknown field `listen_on`"),
            "{problem:?}"
        );
        let problem = only_problem("[server]\n");
        assert_eq!(problem.path, "");
        assert!(
            problem.reason.contains("missing field `zone`"),
            "{problem:?}"
        );
    }

    #[test]
    fn the_error_lists_one_problem_per_line_with_its_path() {
        let error = ConfigError::Invalid(vec![
            Problem {
                path: "zone.ttl".into(),
                reason: "must be below 2^31".into(),
            },
            Problem {
                path: String::new(),
                reason: "TOML parse error".into(),
            },
        ]);
        assert_eq!(
            error.to_string(),
            "zone.ttl: must be below 2^31\nTOML parse error"
        );
        assert_eq!(error.problems().len(), 2);
    }

    #[test]
    fn an_unreadable_file_is_named_and_has_no_problems() {
        let error = load(Path::new("/nonexistent/gslbd.toml")).expect_err("no such file");
        assert!(matches!(error, ConfigError::Read { .. }));
        assert!(error.problems().is_empty());
        assert!(
            error
                .to_string()
                .starts_with("cannot read /nonexistent/gslbd.toml: "),
            "{error}"
        );
    }
}
