//! Namespace filters and renames, with mongorestore's conventions:
//! `--ns-include` / `--ns-exclude` take patterns where `*` matches any text
//! (`shop.*`, `*.logs`); `--ns-from` / `--ns-to` rename, with `$name$`
//! variables captured in the first and substituted in the second
//! (`--ns-from 'shop.$coll$' --ns-to 'shop_copy.$coll$'`).

use std::collections::HashSet;

use anyhow::Result;

use crate::cli::usage;

/// One pattern piece.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(String),
    /// `*` (no name) or `$name$`.
    Any(Option<String>),
}

/// A namespace pattern.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pattern {
    pieces: Vec<Piece>,
}

impl Pattern {
    /// Parses `db.coll` patterns with `*` and `$name$`.
    pub(crate) fn parse(text: &str) -> Result<Pattern> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => {
                    flush(&mut literal, &mut pieces);
                    pieces.push(Piece::Any(None));
                }
                '$' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '$' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed || name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        return Err(usage(format!("bad variable in namespace pattern {text:?}: write $name$")));
                    }
                    flush(&mut literal, &mut pieces);
                    pieces.push(Piece::Any(Some(name)));
                }
                '\\' => literal.push(chars.next().unwrap_or('\\')),
                c => literal.push(c),
            }
        }
        flush(&mut literal, &mut pieces);
        Ok(Pattern { pieces })
    }

    /// Matches a namespace; returns the captured variables if it matches.
    pub(crate) fn captures(&self, ns: &str) -> Option<Vec<(String, String)>> {
        let mut captures = Vec::new();
        if match_from(&self.pieces, ns, &mut captures, &mut HashSet::new()) {
            Some(captures)
        } else {
            None
        }
    }

    /// Whether a literal `.` has pattern text on both sides.
    fn has_separator(&self) -> bool {
        let mut before = false;
        for (index, piece) in self.pieces.iter().enumerate() {
            match piece {
                Piece::Literal(lit) => {
                    if let Some(dot) = lit.find('.') {
                        let left = before || dot > 0;
                        let right = dot + 1 < lit.len() || index + 1 < self.pieces.len();
                        return left && right;
                    }
                    before = true;
                }
                Piece::Any(_) => before = true,
            }
        }
        false
    }

    fn variables(&self) -> Vec<&str> {
        self.pieces.iter().filter_map(|p| if let Piece::Any(Some(n)) = p { Some(n.as_str()) } else { None }).collect()
    }
}

fn flush(literal: &mut String, pieces: &mut Vec<Piece>) {
    if !literal.is_empty() {
        pieces.push(Piece::Literal(std::mem::take(literal)));
    }
}

/// Matches `pieces` against `text`. A (pieces left, text left) pair that
/// failed once fails again whatever was captured before, so failures are
/// remembered: a pattern with many `*` stays fast (no exponential backtracking).
fn match_from(
    pieces: &[Piece],
    text: &str,
    captures: &mut Vec<(String, String)>,
    failed: &mut HashSet<(usize, usize)>,
) -> bool {
    let state = (pieces.len(), text.len());
    if failed.contains(&state) {
        return false;
    }
    let matched = match pieces.split_first() {
        None => text.is_empty(),
        Some((Piece::Literal(lit), rest)) => {
            text.strip_prefix(lit.as_str()).is_some_and(|tail| match_from(rest, tail, captures, failed))
        }
        Some((Piece::Any(name), rest)) => (0..=text.len()).filter(|&i| text.is_char_boundary(i)).any(|split| {
            let mark = captures.len();
            if let Some(name) = name {
                captures.push((name.clone(), text[..split].to_string()));
            }
            let found = match_from(rest, &text[split..], captures, failed);
            if !found {
                captures.truncate(mark);
            }
            found
        }),
    };
    if !matched {
        failed.insert(state);
    }
    matched
}

/// Which namespaces to keep and what to call them.
#[derive(Debug, Clone, Default)]
pub(crate) struct NsMap {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
    renames: Vec<(Pattern, String)>,
}

impl NsMap {
    /// Builds a map; `from` and `to` pair up in order.
    pub(crate) fn new(include: &[String], exclude: &[String], from: &[String], to: &[String]) -> Result<NsMap> {
        if from.len() != to.len() {
            return Err(usage(format!(
                "--ns-from and --ns-to must come in pairs ({} --ns-from, {} --ns-to)",
                from.len(),
                to.len()
            )));
        }
        let mut renames = Vec::new();
        for (from, to) in from.iter().zip(to) {
            let pattern = Pattern::parse(from)?;
            let target = Pattern::parse(to)?;
            for var in target.variables() {
                if !pattern.variables().contains(&var) {
                    return Err(usage(format!(
                        "--ns-to {to:?} uses ${var}$, which --ns-from {from:?} does not capture"
                    )));
                }
            }
            // A namespace is `db.collection`: the new name needs its dot, with
            // something on each side (a variable may still capture nothing;
            // `NsMap::map` refuses such a result).
            if !target.has_separator() {
                return Err(usage(format!("--ns-to {to:?} is not a namespace: write db.collection (e.g. copy.$c$)")));
            }
            renames.push((pattern, to.clone()));
        }
        Ok(NsMap {
            include: include.iter().map(|p| Pattern::parse(p)).collect::<Result<_>>()?,
            exclude: exclude.iter().map(|p| Pattern::parse(p)).collect::<Result<_>>()?,
            renames,
        })
    }

    /// The target namespace of `db.coll`, or None if it is filtered out.
    pub(crate) fn map(&self, db: &str, coll: &str) -> Option<String> {
        self.map_ns(&format!("{db}.{coll}"))
    }

    /// Like [`NsMap::map`] for a whole `db.coll` string. The server's own
    /// names for a collection's storage are filtered and renamed as that
    /// collection: a time series `X` writes to `system.buckets.X`, and
    /// `convertToCapped` of `X` copies into `tmpXXXXX.convertToCapped.X`.
    pub(crate) fn map_ns(&self, ns: &str) -> Option<String> {
        if let Some((db, coll)) = ns.split_once('.') {
            if let Some((storage, owner)) = storage_of(coll) {
                let target = self.map_logical(&format!("{db}.{owner}"))?;
                let (new_db, new_owner) = target.split_once('.')?;
                return Some(format!("{new_db}.{storage}{new_owner}"));
            }
        }
        self.map_logical(ns)
    }

    fn map_logical(&self, ns: &str) -> Option<String> {
        if !self.include.is_empty() && !self.include.iter().any(|p| p.captures(ns).is_some()) {
            return None;
        }
        if self.exclude.iter().any(|p| p.captures(ns).is_some()) {
            return None;
        }
        for (pattern, template) in &self.renames {
            if let Some(captures) = pattern.captures(ns) {
                let mut target = template.clone();
                for (name, value) in captures {
                    target = target.replace(&format!("${name}$"), &value);
                }
                // A variable that captured nothing can leave `db.` or `.coll`.
                return match target.split_once('.') {
                    Some((db, coll)) if !db.is_empty() && !coll.is_empty() => Some(target),
                    _ => {
                        crate::warn!("{ns} would be renamed to {target:?}, which is not a namespace: skipped");
                        None
                    }
                };
            }
        }
        Some(ns.to_string())
    }

    /// Where database-wide commands (dropDatabase) of `db` go: the database
    /// that `db.<anything>` maps to, if it is kept.
    pub(crate) fn map_db(&self, db: &str) -> Option<String> {
        const PROBE: &str = "\u{1}mb-probe";
        let target = self.map(db, PROBE)?;
        target.strip_suffix(&format!(".{PROBE}")).map(str::to_string)
    }
}

/// A collection name the server gives another collection's storage: its
/// prefix and the owner's name (`system.buckets.` and `X` for a time series'
/// buckets, `tmpAbCdE.convertToCapped.` and `X` for a capped conversion's copy).
fn storage_of(coll: &str) -> Option<(&str, &str)> {
    if let Some(owner) = coll.strip_prefix("system.buckets.") {
        return Some((&coll[..coll.len() - owner.len()], owner));
    }
    let (temp, rest) = coll.split_once('.')?;
    let owner = rest.strip_prefix("convertToCapped.")?;
    let random = temp.strip_prefix("tmp")?;
    (!random.is_empty() && random.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| (&coll[..coll.len() - owner.len()], owner))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(include: &[&str], exclude: &[&str], from: &[&str], to: &[&str]) -> NsMap {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        NsMap::new(&v(include), &v(exclude), &v(from), &v(to)).unwrap()
    }

    #[test]
    fn include_and_exclude() {
        let m = map(&["shop.*"], &["shop.logs"], &[], &[]);
        assert_eq!(m.map("shop", "orders").as_deref(), Some("shop.orders"));
        assert_eq!(m.map("shop", "logs"), None);
        assert_eq!(m.map("blog", "posts"), None);
    }

    #[test]
    fn renames_with_variables() {
        let m = map(&[], &[], &["shop.$coll$", "data.$p$_$c$"], &["shop_copy.$coll$", "$c$.$p$"]);
        assert_eq!(m.map("shop", "orders").as_deref(), Some("shop_copy.orders"));
        assert_eq!(m.map("data", "x_acme").as_deref(), Some("acme.x"));
        assert_eq!(m.map("blog", "posts").as_deref(), Some("blog.posts"));
        assert_eq!(m.map_db("shop").as_deref(), Some("shop_copy"));
    }

    #[test]
    fn storage_collections_follow_their_owner() {
        let m = map(&["shop.series", "shop.capped"], &[], &["shop.$c$"], &["copy.$c$"]);
        assert_eq!(m.map("shop", "system.buckets.series").as_deref(), Some("copy.system.buckets.series"));
        assert_eq!(
            m.map("shop", "tmpAb1Cd.convertToCapped.capped").as_deref(),
            Some("copy.tmpAb1Cd.convertToCapped.capped")
        );
        assert_eq!(m.map("shop", "system.buckets.other"), None);
        assert_eq!(m.map("shop", "tmp.convertToCapped.capped"), None, "not the server's temp name");
    }

    #[test]
    fn rejects_unpaired_or_unknown_variables() {
        let v = |s: &str| vec![s.to_string()];
        assert!(NsMap::new(&[], &[], &v("a.*"), &[]).is_err());
        assert!(NsMap::new(&[], &[], &v("a.$x$"), &v("b.$y$")).is_err());
    }

    #[test]
    fn user_patterns_give_usage_errors_never_panics() {
        let v = |s: &str| vec![s.to_string()];
        for (from, to) in [
            ("shop.*", "nodot"),
            ("shop.$c$", "$c$"),
            ("shop.$c$", "copy."),
            ("shop.$c$", ".$c$"),
            ("a.$x", "b.$x$"),
            ("$", "a.b"),
        ] {
            let err = NsMap::new(&[], &[], &v(from), &v(to)).unwrap_err();
            assert_eq!(crate::cli::exit_code_of(&err), crate::cli::EXIT_USAGE, "{from} -> {to}: {err}");
        }
        assert_eq!(
            crate::cli::exit_code_of(&NsMap::new(&[], &[], &v("a.*"), &[]).unwrap_err()),
            crate::cli::EXIT_USAGE
        );
        // A variable that captures nothing cannot make a namespace without a collection.
        let m = NsMap::new(&[], &[], &v("shop.$p$x"), &v("copy.$p$")).unwrap();
        assert_eq!(m.map("shop", "x"), None);
        assert_eq!(m.map("shop", "ax").as_deref(), Some("copy.a"));
        assert!(NsMap::new(&[], &[], &v("$db$.$c$"), &v("$db$_copy.$c$")).is_ok());
        // Many wildcards against a long name that does not match: fast, not exponential.
        let stars = Pattern::parse(&format!("{}b", "*a".repeat(30))).unwrap();
        assert!(stars.captures(&"a".repeat(200)).is_none());
    }
}
