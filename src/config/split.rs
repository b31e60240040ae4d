//! A large config file is mostly `[[services]]` tables. Parsed whole, the toml crate holds
//! every token and a tree of the entire document before deserializing anything: about 30 times
//! the file (1.5 GB for 100 000 services × 10 regions). Split at its top-level `[[services]]`
//! headers instead, each service's table is parsed and deserialized alone, and only the
//! deserialized services are held.
//!
//! The split is a plain line scan, so it declines (and the file is parsed whole) where lines
//! may not be what they look like: multi-line strings. A split that went wrong anyway (a line
//! of a multi-line array that looks like a header) cannot parse, and a file that does not parse
//! split is parsed whole for its error message: the whole parse stays the reference.

/// A file's text without its `[[services]]` tables, and those tables in order.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Split<'a> {
    /// Everything else, line numbers kept.
    pub head: String,
    /// Each `[[services]]` table with its sub-tables (`[services.targets]`).
    pub services: Vec<&'a str>,
}

/// What kind of line starts a table, if any.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Header {
    /// `[[services]]`
    Service,
    /// `[services.x]` or `[[services.x]]`: part of the service above.
    ServicePart,
    /// Any other table.
    Other,
}

fn header(line: &str) -> Option<Header> {
    let line = line.trim_start();
    if !line.starts_with('[') {
        return None;
    }
    let inner = line
        .trim_start_matches('[')
        .split(']')
        .next()
        .unwrap_or("")
        .trim();
    Some(match inner {
        "services" if line.starts_with("[[") => Header::Service,
        _ if inner.starts_with("services.") => Header::ServicePart,
        _ => Header::Other,
    })
}

/// `text` split at its `[[services]]` tables; `None` when it has none, or holds multi-line
/// strings.
pub(super) fn split(text: &str) -> Option<Split<'_>> {
    if text.contains("\"\"\"") || text.contains("'''") {
        return None;
    }
    let mut services = Vec::new();
    // Byte ranges of the services' tables, and where the current one started.
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut open: Option<usize> = None;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        match header(line) {
            Some(Header::Service) => {
                if let Some(start) = open.take() {
                    ranges.push((start, at));
                }
                open = Some(at);
            }
            Some(Header::ServicePart) if open.is_some() => {}
            // `[services.x]` before any `[[services]]`: not ours to guess at.
            Some(Header::ServicePart) => return None,
            Some(Header::Other) => {
                if let Some(start) = open.take() {
                    ranges.push((start, at));
                }
            }
            None => {}
        }
        at += line.len();
    }
    if let Some(start) = open {
        ranges.push((start, text.len()));
    }
    if ranges.is_empty() {
        return None;
    }
    let mut head = String::new();
    let mut from = 0;
    for &(start, end) in &ranges {
        head.push_str(&text[from..start]);
        services.push(&text[start..end]);
        // The table's lines stay as empty lines, so the rest keeps its line numbers; none when
        // the tables run to the end of the file.
        if end < text.len() {
            let lines = text[start..end].matches('\n').count();
            head.extend(std::iter::repeat_n('\n', lines));
        }
        from = end;
    }
    head.push_str(&text[from..]);
    Some(Split { head, services })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_tables_are_cut_out_with_their_sub_tables_and_lines_kept() {
        let text = "a = 1\n[zone]\nname = \"x\"\n[[services]]\nname = \"s\"\n[services.targets]\neu = [\"192.0.2.1\"]\n[[services]]\nname = \"t\"\n[geo]\nx = 2\n";
        let split = split(text).expect("split");
        assert_eq!(
            split.services,
            vec![
                "[[services]]\nname = \"s\"\n[services.targets]\neu = [\"192.0.2.1\"]\n",
                "[[services]]\nname = \"t\"\n",
            ]
        );
        assert_eq!(
            split.head,
            "a = 1\n[zone]\nname = \"x\"\n\n\n\n\n\n\n[geo]\nx = 2\n"
        );
    }

    #[test]
    fn the_example_configs_read_the_same_split_or_whole() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for file in ["config/example.toml", "config/probes.toml"] {
            let text = std::fs::read_to_string(root.join(file)).expect("example config");
            let parts = split(&text).expect("has [[services]] tables");
            assert!(parts.services.len() >= 3, "{file}");
            let mut problems = super::super::Problems::default();
            let split = super::super::parse_split(&parts, &mut problems).expect("parses split");
            let raw = super::super::parse_raw(&text).expect("parses whole");
            let whole = super::super::validate_whole(raw, &mut problems);
            assert!(problems.0.is_empty(), "{file}: {:?}", problems.0);
            assert_eq!(format!("{split:?}"), format!("{whole:?}"), "{file}");
        }
    }

    #[test]
    fn a_file_that_does_not_parse_split_is_parsed_whole_for_its_error() {
        // A multi-line array whose line looks like a header: the split cannot parse.
        let text = "[[services]]\nname = \"a\"\nx = [\n[zone]\n]\n";
        let parts = split(text).expect("looks splittable");
        let mut problems = super::super::Problems::default();
        assert!(super::super::parse_split(&parts, &mut problems).is_none());
        assert!(super::super::parse(text).is_err());
    }

    #[test]
    fn problems_of_split_tables_keep_their_order_and_paths() {
        let table = |name: &str, region: &str| {
            format!(
                "[[services]]\nname = \"{name}\"\nstrategy = \"round-robin\"\n[services.targets]\n{region} = [\"192.0.2.1\"]\n"
            )
        };
        let fixture = super::super::fixture::Fixture::new()
            .table(&table("a.gslb.example.com", "eu"))
            .table(&table("b.gslb.example.com", "mars"))
            .table(&table("a.gslb.example.com", "eu"));
        assert_eq!(split(&fixture.text()).map(|s| s.services.len()), Some(3));
        let problems = fixture.problems();
        let listed: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.reason))
            .collect();
        assert_eq!(
            listed,
            [
                "services[1].targets.mars: unknown region mars",
                "services[2].name: duplicate service a.gslb.example.com.",
            ]
        );
    }

    #[test]
    fn no_split_without_services_tables_or_with_multi_line_strings() {
        assert_eq!(split("services = [{ name = \"a\" }]\n"), None);
        assert_eq!(
            split("x = \"\"\"\n[[services]]\n\"\"\"\n[[services]]\n"),
            None
        );
        assert_eq!(split("[services.targets]\n[[services]]\n"), None);
    }
}
